"""Extraction of a folder of images: DINO and DINOv2 through the real loading path, the cache,
bad input, the released code's pseudo-matches, and a folder trained end to end."""

import json
import pathlib
import warnings

import numpy as np
import pytest
from PIL import Image

from asic_jax import checkpoint, train, training_collection
from asic_jax.correspondences import cache as cache_lib
from asic_jax.correspondences import extract
from asic_jax.data import folder, images, synthetic
from asic_jax.errors import UserError
from asic_jax.jobs import extract as extract_job
from asic_jax.models import dino, dinov2
from conftest import load_config

SIZE = 32


@pytest.fixture(scope='module')
def photo_folder(tmp_path_factory) -> pathlib.Path:
  """Six small synthetic renders as PNG files, in three of the modes photos come in."""
  path = tmp_path_factory.mktemp('photos')
  config = load_config('tiny')
  rendered = synthetic.make_synthetic(config.data.synthetic, size=48, num_parts=4, seed=1)
  pixels = np.rint((rendered.images + 1) * 127.5).astype(np.uint8)
  for i, image in enumerate(pixels):
    Image.fromarray(image[4:44]).save(path / f'img{i}.png')  # 40 x 48: not square
  gray = pixels[0].mean(-1)
  Image.fromarray((gray * 257).astype(np.uint16)).save(path / 'img6_gray16.png')
  rgba = np.concatenate([pixels[1], np.full((48, 48, 1), 255, np.uint8)], -1)
  Image.fromarray(rgba, 'RGBA').save(path / 'img7_rgba.png')
  return path


def _config(model, data_path, cache_dir, **overrides):
  settings = {
      'data.path': str(data_path),
      'data.img_size': SIZE,
      'features.model': str(model),
      'features.stride': 4,
      'features.cache_dir': str(cache_dir),
      'parts.num_parts': 4
  }
  return load_config('folder', **{**settings, **overrides})


def test_folder_images_are_converted(photo_folder, tmp_path):
  gray = images.read_rgb(photo_folder / 'img6_gray16.png')
  rgba = images.read_rgb(photo_folder / 'img7_rgba.png')
  assert gray.shape == rgba.shape == (48, 48, 3) and gray.dtype == rgba.dtype == np.uint8
  # 16-bit values v * 257 read back as v: the full 16-bit range maps to 8 bits.
  stored = np.asarray(Image.open(photo_folder / 'img6_gray16.png'), np.float64)
  np.testing.assert_array_equal(gray[..., 0], np.rint(stored / 257))
  assert np.all(gray[..., 0] == gray[..., 2])
  # Opaque RGBA is its RGB; transparent pixels are composited over white.
  np.testing.assert_array_equal(rgba[4:44], images.read_rgb(photo_folder / 'img1.png'))
  half = np.zeros((2, 2, 4), np.uint8)
  half[..., 0] = 200
  half[0, 0, 3], half[1, 1, 3] = 255, 0
  Image.fromarray(half, 'RGBA').save(tmp_path / 'half.png')
  np.testing.assert_array_equal(
      images.read_rgb(tmp_path / 'half.png')[[0, 1], [0, 1]], [[200, 0, 0], [255, 255, 255]])
  collection = folder.load_folder(photo_folder, SIZE)
  assert len(collection) == 8 and collection.images.shape == (8, SIZE, SIZE, 3)
  assert collection.names[6:] == ('img6_gray16', 'img7_rgba')


def test_tiny_vit_loads_through_the_hub_loading_path(tiny_vit, monkeypatch):
  monkeypatch.setenv('HF_HUB_OFFLINE', '1')
  arch, params = dino.load_vit(str(tiny_vit))
  assert (arch.num_layers, arch.num_heads, arch.patch_size, arch.position_grid) == (12, 6, 8, 28)
  facets, centers, saliency, cls = dino.extract_layers(params,
                                                       np.zeros((1, SIZE, SIZE, 3), np.float32),
                                                       arch,
                                                       layers=(9, 11),
                                                       stride=4,
                                                       saliency=True)
  single = dino.extract(params, np.zeros((1, SIZE, SIZE, 3), np.float32), arch, layer=9, stride=4)
  np.testing.assert_allclose(facets[9], single.descriptors, rtol=1e-5, atol=1e-6)
  assert facets[11].shape == (1, 7, 7, 24) and saliency.shape == (1, 7, 7)
  assert cls[11].shape == (1, 24)
  np.testing.assert_array_equal(centers[0, :3, 0], [4, 8, 12])  # s * i + p / 2


def test_cache_recomputes_only_what_changed(tiny_vit, photo_folder, tmp_path, monkeypatch):
  calls = []
  real = extract.extract_descriptors
  monkeypatch.setattr(extract, 'extract_descriptors',
                      lambda *a, **k: calls.append(1) or real(*a, **k))
  config = _config(tiny_vit, photo_folder, tmp_path / 'cache')
  first = training_collection.load(config)
  assert len(calls) == 1
  assert first.pairs.shape[1] == 2 and first.matches.shape[2] == 5
  assert first.masks.shape == first.parts.shape == (8, SIZE, SIZE)
  again = training_collection.load(config)
  assert len(calls) == 1  # a second run recomputes nothing
  for field in ('pairs', 'matches', 'masks', 'parts'):
    np.testing.assert_array_equal(getattr(first, field), getattr(again, field))

  # A changed setting recomputes.
  training_collection.load(
      _config(tiny_vit, photo_folder, tmp_path / 'cache', **{'features.max_matches': 3}))
  assert len(calls) == 2
  # A truncated entry is rebuilt (with a warning), to the same result.
  entries = sorted((tmp_path / 'cache' / 'correspondences').glob('*.npz'))
  assert len(entries) == 2 and not list((tmp_path / 'cache').rglob('*.tmp'))
  target = cache_lib.Cache(tmp_path / 'cache').path(
      'correspondences',
      cache_lib.make_key(extract.extraction_settings(config), cache_lib.digest_arrays(first.images),
                         'none'))
  target.write_bytes(target.read_bytes()[:200])
  rebuilt = training_collection.load(config)
  assert len(calls) == 3
  np.testing.assert_array_equal(rebuilt.matches, first.matches)
  # A changed image recomputes.
  changed = tmp_path / 'changed'
  changed.mkdir()
  for p in photo_folder.iterdir():
    (changed / p.name).write_bytes(p.read_bytes())
  pixels = np.asarray(Image.open(changed / 'img3.png')).copy()
  pixels[:8] = 255 - pixels[:8]
  Image.fromarray(pixels).save(changed / 'img3.png')
  training_collection.load(_config(tiny_vit, changed, tmp_path / 'cache'))
  assert len(calls) == 4


def test_corrupt_image_names_the_file(tmp_path):
  for i in range(2):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f'ok{i}.png')
  (tmp_path / 'broken.jpg').write_bytes(b'\xff\xd8\xff not really a jpeg')
  with pytest.raises(UserError, match='broken.jpg'):
    folder.load_folder(tmp_path, SIZE)


def test_folder_errors(tmp_path):
  with pytest.raises(UserError, match='image folder not found'):
    folder.load_folder(tmp_path / 'nowhere', SIZE)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'only.png')
  with pytest.raises(UserError, match='at least two images, found 1'):
    folder.load_folder(tmp_path, SIZE)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'second.png')
  (tmp_path / 'masks').mkdir()
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / 'masks' / 'only.png')
  with pytest.raises(UserError, match='no mask for 1 image.*second'):
    folder.load_folder(tmp_path, SIZE, mask_dir=tmp_path / 'masks')


def test_pairs_without_matches_are_skipped_and_none_at_all_is_an_error():
  pairs = np.asarray([[0, 1], [0, 2], [1, 2]], np.int32)
  matches = np.zeros((3, 4, 5), np.float32)
  matches[0, :2, 4] = 0.9
  matches[2, :1, 4] = 0.8
  with pytest.warns(UserWarning, match='1 of 3 image pairs have no pseudo-match.*a-c'):
    kept_pairs, kept = extract._drop_empty_pairs('x', ('a', 'b', 'c'), pairs, matches)
  np.testing.assert_array_equal(kept_pairs, [[0, 1], [1, 2]])
  assert kept.shape == (2, 2, 5)
  with pytest.raises(UserError, match='no pseudo-match in any of the 3 image pairs'):
    extract._drop_empty_pairs('x', ('a', 'b', 'c'), pairs, np.zeros((3, 4, 5), np.float32))


def test_released_pseudo_matches_are_imported_in_our_layout(tmp_path):
  names = ('a', 'b', 'c')
  kp = lambda *xy: np.asarray(xy, np.int32).reshape(-1, 2)
  np.save(tmp_path / 'a_b.npy', {
      'kp1': kp(1, 2, 3, 4),
      'kp2': kp(5, 6, 7, 8),
      'ranks_sim': np.asarray([0.9, 0.5])
  })
  np.save(tmp_path / 'a_c.npy', {
      'kp1': kp(9, 9),
      'kp2': kp(10, 11),
      'ranks_sim': np.asarray([0.7])
  })
  np.save(tmp_path / 'b_c.npy', {'kp1': kp(0, 1), 'kp2': kp(2, 3), 'ranks_sim': np.asarray([0.6])})
  pairs = np.asarray([[0, 1], [2, 0], [1, 2]])  # (c, a) reads a_c.npy, its ends swapped
  matches = extract.import_released_matches(tmp_path, names, pairs, size=16)
  np.testing.assert_allclose(matches[0], [[1, 2, 5, 6, 0.9], [3, 4, 7, 8, 0.5]], rtol=1e-7)
  np.testing.assert_allclose(matches[1], [[10, 11, 9, 9, 0.7], [0, 0, 0, 0, 0]])
  np.testing.assert_allclose(matches[2, 0], [0, 1, 2, 3, 0.6])
  with pytest.raises(UserError, match='outside the 8-px frame'):
    extract.import_released_matches(tmp_path, names, pairs, size=8)


def test_folder_extracts_trains_and_checkpoints(tiny_vit, photo_folder, tmp_path):
  config = _config(
      tiny_vit, photo_folder, tmp_path / 'cache', **{
          'mode': 'extract',
          'model.channel_multiplier': 0.125,
          'model.grid_size': 32,
          'loss.recon_size': 16,
          'loss.recon': 0.0,
          'train.batch_size': 4,
          'train.num_steps': 2,
          'checkpoint.every': 2,
          'train.log_every': 1,
          'vis.enabled': False
      })
  summary = extract_job.run(config, tmp_path / 'run')
  assert json.loads((tmp_path / 'run' / 'extraction.json').read_text()) == summary
  assert summary['images'] == 8 and summary['pairs'] >= 1
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    train.train(config, tmp_path / 'run')
  assert checkpoint.Checkpointer(tmp_path / 'run', read_only=True).all_steps() == [2]


def test_knn_pair_graph_through_extraction(tiny_vit, photo_folder, tmp_path):
  config = _config(tiny_vit, photo_folder, tmp_path / 'cache', **{'pairs.max_per_image': 2})
  collection = training_collection.load(config)
  assert len(collection.pairs) <= 8 * 2  # N k, not N (N - 1) / 2 = 28
  # Pairs without matches are dropped, so degrees can fall below k only for those.
  assert np.bincount(collection.pairs.ravel(), minlength=8).max() >= 2


def test_dinov2_backbone_extracts_through_the_hub_loading_path(tiny_vit, tiny_dinov2, photo_folder,
                                                               tmp_path, monkeypatch):
  """`features.backbone=dinov2`: the descriptors are the DINOv2 forward's (block 9 and 11 key
  facets, saliency over every head), masks and parts come from them, and the cache key holds
  the backbone and its weights' fingerprint."""
  monkeypatch.setenv('HF_HUB_OFFLINE', '1')
  dinov2_settings = {
      'features.backbone': 'dinov2',
      'features.dinov2.model': str(tiny_dinov2),
      'features.stride': 2,
      'features.batch_size': 8  # one batch, as below (a near-flat saliency's min-max shows it)
  }
  config = _config(tiny_vit, photo_folder, tmp_path / 'cache', **dinov2_settings)
  collection = training_collection.load(config)
  assert collection.masks_from == 'coseg' and collection.parts.max() <= 4
  found = extract.extract_descriptors(collection.images, config)
  arch, params = dinov2.load_dinov2(str(tiny_dinov2))
  want = dino.extract(params,
                      collection.images,
                      arch,
                      layer=9,
                      stride=2,
                      saliency=True,
                      saliency_heads=tuple(range(6)))
  assert found.match.shape == (8, 10, 10, 24)  # 1 + (32 - 14) / 2 patches a side
  np.testing.assert_allclose(found.match, want.descriptors, rtol=1e-3, atol=1e-3)  # float16
  np.testing.assert_allclose(found.saliency, want.saliency, atol=1e-6)
  np.testing.assert_array_equal(found.centers[0, :2], [[7, 7], [9, 7]])  # s j + p / 2

  dino_settings = extract.extraction_settings(_config(tiny_vit, photo_folder, tmp_path))
  settings = extract.extraction_settings(config)
  assert settings['backbone'] == 'dinov2' and dino_settings['backbone'] == 'dino'
  assert settings['model'].startswith(str(tiny_dinov2) + ':')  # the folder and its contents
  other = tmp_path / 'other_weights'
  import transformers  # pylint: disable=import-outside-toplevel
  transformers.FlaxDinov2Model(transformers.Dinov2Config.from_pretrained(tiny_dinov2),
                               seed=1).save_pretrained(other)
  (tiny_dinov2 / 'flax_model.msgpack').replace(tmp_path / 'kept.msgpack')
  try:  # the same folder with other weights is another cache entry
    (other / 'flax_model.msgpack').replace(tiny_dinov2 / 'flax_model.msgpack')
    assert extract.extraction_settings(config)['model'] != settings['model']
  finally:
    (tmp_path / 'kept.msgpack').replace(tiny_dinov2 / 'flax_model.msgpack')


@pytest.mark.parametrize('overrides,message', [
    ('', 'features.stride=4 must divide the patch size 14'),
    ('features.stride=2,features.match_layer=12', 'match_layer=12, .* has blocks 0 ... 11'),
    ('features.dinov2.model=/nowhere',
     "cannot load the DINOv2 model config.features.dinov2.model='/nowhere'"),
])
def test_dinov2_bad_settings_are_one_line(tiny_vit, tiny_dinov2, photo_folder, tmp_path, overrides,
                                          message):
  settings = {'features.backbone': 'dinov2', 'features.dinov2.model': str(tiny_dinov2)}
  for item in filter(None, overrides.split(',')):
    key, value = item.split('=')
    settings[key] = int(value) if value.isdigit() else value
  config = _config(tiny_vit, photo_folder, tmp_path, **settings)
  with pytest.raises(UserError, match=message):
    extract.extract_descriptors(np.zeros((1, SIZE, SIZE, 3), np.float32), config)
