"""The VGG-16 backbone: its grid resampling, real-photo matches, cache key and bad settings."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from asic_jax import validate
from asic_jax.correspondences import cache as cache_lib
from asic_jax.correspondences import extract
from asic_jax.data import collection as collection_lib
from asic_jax.data import images as images_lib
from asic_jax.errors import UserError
from asic_jax.models import perceptual, vgg
from conftest import load_config


@pytest.fixture(scope='module')
def params():
  return vgg.load_vgg()


def test_layers_are_read_at_the_cell_centres(params):
  """Every layer on the stride-4 grid equals scipy's bilinear read of the layer's own map at
  (p - (f - 1) / 2) / f, f its downsampling; at stride f it is the map itself."""
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  layers = ('relu3_3', 'relu4_3')
  found, centers = vgg.extract_layers(params, jnp.asarray(images), layers=layers, stride=4)
  np.testing.assert_array_equal(centers[0, :3, 0], [1.5, 5.5, 9.5])
  native = perceptual.trunk().apply({'params': params}, jnp.asarray((images + 1) / 2))
  for layer in layers:
    factor = vgg.LAYERS[layer]
    cells = (np.arange(8) * 4 + 1.5 - (factor - 1) / 2) / factor
    rows, cols = np.meshgrid(cells, cells, indexing='ij')
    maps = np.asarray(native[layer])
    expected = np.stack([
        np.stack([
            scipy.ndimage.map_coordinates(maps[b, ..., c], [rows, cols], order=1, mode='nearest')
            for c in range(maps.shape[-1])
        ], -1) for b in range(2)
    ])
    np.testing.assert_allclose(found[layer], expected, rtol=1e-4, atol=1e-5 * expected.max())
  same, _ = vgg.extract_layers(params, jnp.asarray(images), layers=('relu3_3',), stride=4)
  np.testing.assert_allclose(same['relu3_3'], native['relu3_3'], rtol=1e-5, atol=1e-5 * np.max(native['relu3_3']))


def test_matches_recover_a_planted_shift_of_a_real_photo(data_dir, tmp_path):
  """Two 128-px crops of one PF-WILLOW photo (duck 060_0002, 300 x 249), 8 px apart in x and
  4 in y: the VGG relu4_3 mutual nearest neighbours move by that shift (measured: 77 % exactly,
  97 % within one 4-px cell; the rest sit in the flat edge-padding above and below the photo).
  """
  path = data_dir / 'PF-dataset-WILLOW' / 'duck(S)' / '060_0002.png'
  photo, _ = images_lib.square(images_lib.read_rgb(path), 144)
  photo = images_lib.to_unit_range(photo)
  a, b = photo[:128, :128], photo[4:132, 8:136]  # b's pixel (x, y) is a's (x + 8, y + 4)
  collection = collection_lib.Collection(name='shift', images=np.stack([a, b]), names=('a', 'b'))
  config = load_config(
      'folder', **{
          'data.img_size': 128,
          'features.backbone': 'vgg16',
          'features.masks': 'none',
          'features.cache_dir': str(tmp_path)
      })
  found = extract.add_correspondences(collection, config)
  matches = found.matches[0][found.matches[0, :, 4] > 0]
  assert len(matches) > 100
  shift = matches[:, 2:4] - matches[:, 0:2]
  error = np.max(np.abs(shift - [-8, -4]), axis=-1)
  assert np.mean(error < 0.5) > 0.7 and np.mean(error <= 4) > 0.9, np.unique(shift, axis=0)
  np.testing.assert_array_equal(np.median(shift, axis=0), [-8, -4])
  assert found.parts.shape == (2, 128, 128) and found.masks.min() == 1.0


def test_the_backbone_and_its_layers_are_part_of_the_cache_key(monkeypatch):
  config = load_config('folder', **{'features.backbone': 'vgg16'})
  keys = {}
  for name, changes in (('vgg', {}), ('layer', {'features.vgg.match_layer': 'relu3_3'}),
                        ('stride', {'features.vgg.stride': 8}), ('parts layer', {
                            'features.vgg.seg_layer': 'relu4_3'
                        })):
    changed = load_config('folder', **{'features.backbone': 'vgg16', **changes})
    keys[name] = cache_lib.make_key(extract.extraction_settings(changed))
  assert len(set(keys.values())) == 4
  # DINO's own settings do not touch a VGG run's key; the weights' contents do.
  dino_layer = load_config('folder', **{'features.backbone': 'vgg16', 'features.match_layer': 3})
  assert cache_lib.make_key(extract.extraction_settings(dino_layer)) == keys['vgg']
  monkeypatch.setattr(cache_lib, 'digest_files', lambda paths: 'other weights')
  assert cache_lib.make_key(extract.extraction_settings(config)) != keys['vgg']


@pytest.mark.parametrize('field,value,message', [
    ('features.backbone', 'resnet',
     "config.features.backbone must be one of ('dino', 'dinov2', 'vgg16')"),
    ('features.vgg.match_layer', 'relu4_4', 'config.features.vgg.match_layer must be one of'),
    ('features.vgg.stride', 3, 'config.features.vgg.stride must be one of (1, 2, 4, 8, 16)'),
])
def test_bad_backbone_settings_are_named(field, value, message):
  with pytest.raises(UserError, match=message.replace('(', r'\(').replace(')', r'\)')):
    validate.check(load_config('folder', **{field: value}))


def test_coseg_without_saliency_is_refused_before_extracting(monkeypatch):
  monkeypatch.setattr(extract, 'extract_descriptors',
                      lambda *a: pytest.fail('extraction ran before the settings were checked'))
  collection = collection_lib.Collection(name='c', images=np.zeros((2, 32, 32, 3), np.float32),
                                         names=('a', 'b'))
  config = load_config('folder', **{'features.backbone': 'vgg16', 'data.img_size': 32})
  with pytest.raises(UserError,
                     match="masks='coseg' needs DINO's or DINOv2's CLS saliency.*masks=none"):
    extract.add_correspondences(collection, config)
  # With masks of its own the collection needs no co-segmentation.
  masked = collection.replace(masks=np.ones((2, 32, 32), np.float32))
  monkeypatch.setattr(extract, 'extract_descriptors', lambda *a: (_ for _ in ()).throw(
      RuntimeError('reached extraction')))
  with pytest.raises(RuntimeError, match='reached extraction'):
    extract.add_correspondences(masked, config)

