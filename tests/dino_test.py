"""Tests of asic_jax.models.dino against dino-vit-features run in PyTorch, and transformers.

`fixtures/dino_reference.npz` (scripts/make_dino_fixture.py) holds a tiny random ViT, saved by
PyTorch's `save_pretrained`, and dino-vit-features' outputs for it at stride 4.
"""

import functools
import importlib.util
import os

os.environ['HF_HUB_OFFLINE'] = '1'  # before transformers reads it: nothing may go online

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import transformers
from conftest import FIXTURES

from asic_jax.models import dino


@pytest.fixture(scope='module')
def ref() -> dict[str, np.ndarray]:
  with np.load(FIXTURES / 'dino_reference.npz', allow_pickle=False) as data:
    return {key: data[key] for key in data.files}


@pytest.fixture(scope='module')
def vit(ref, tmp_path_factory) -> tuple[dino.ViTArch, dict]:
  """The fixture's model, loaded from a folder as PyTorch's `save_pretrained` wrote it."""
  folder = tmp_path_factory.mktemp('pt_vit')
  (folder / 'config.json').write_text(str(ref['config_json']))
  (folder / 'model.safetensors').write_bytes(ref['safetensors'].tobytes())
  return dino.load_vit(str(folder))


def _extract(vit, images, **kwargs) -> dino.DinoFeatures:
  arch, params = vit
  return dino.extract(params, jnp.asarray(images), arch, **kwargs)


def test_loads_pytorch_safetensors_folder(vit, ref):
  arch, params = vit
  assert arch == dino.ViTArch(patch_size=8,
                              hidden_size=36,
                              num_heads=6,
                              num_layers=3,
                              position_grid=28,
                              layer_norm_eps=1e-6,
                              hidden_act='gelu')
  torch_state = safetensors.numpy.load(ref['safetensors'].tobytes())
  np.testing.assert_array_equal(params['embeddings']['position_embeddings'],
                                torch_state['embeddings.position_embeddings'])
  np.testing.assert_array_equal(
      params['embeddings']['patch_embeddings']['projection']['kernel'],
      torch_state['embeddings.patch_embeddings.projection.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(
      params['encoder']['layer']['1']['attention']['attention']['key']['kernel'],
      torch_state['encoder.layer.1.attention.attention.key.weight'].T)


@pytest.mark.skipif(importlib.util.find_spec('torch') is not None, reason='torch is installed')
def test_pytorch_bin_without_torch_is_a_clear_error(ref, tmp_path):
  (tmp_path / 'config.json').write_text(str(ref['config_json']))
  (tmp_path / 'pytorch_model.bin').write_bytes(b'not read')
  with pytest.raises(OSError, match='only PyTorch weights .* torch is not installed'):
    dino.load_vit(str(tmp_path))


@pytest.mark.parametrize('case', ['sq', 'rect'])
def test_key_facet_and_saliency_match_pytorch(vit, ref, case):
  images = ref[f'images_{case}']
  out = _extract(vit,
                 images,
                 layer=int(ref['key_layer']),
                 facet='key',
                 stride=int(ref['stride']),
                 include_cls=True,
                 saliency=True)
  key = ref[f'key_{case}']
  batch, height, width, _ = images.shape
  rows, cols = 1 + (height - 8) // 4, 1 + (width - 8) // 4
  assert out.descriptors.shape == (batch, rows, cols, 36)
  np.testing.assert_allclose(out.descriptors.reshape(key[:, 1:].shape), key[:, 1:], atol=1e-4)
  np.testing.assert_allclose(out.cls, key[:, 0], atol=1e-4)
  np.testing.assert_allclose(out.saliency.reshape(batch, -1), ref[f'saliency_{case}'], atol=1e-4)
  assert tuple(ref['saliency_heads']) == dino.SALIENCY_HEADS


@pytest.mark.parametrize('facet', ['query', 'token'])
def test_other_facets_match_pytorch(vit, ref, facet):
  want = ref[f'{facet}_rect']
  out = _extract(vit,
                 ref['images_rect'],
                 layer=int(ref[f'{facet}_layer']),
                 facet=facet,
                 stride=4,
                 include_cls=True)
  np.testing.assert_allclose(out.descriptors.reshape(want[:, 1:].shape), want[:, 1:], atol=1e-4)
  np.testing.assert_allclose(out.cls, want[:, 0], atol=1e-4)


def test_log_binned_descriptors_match_pytorch(vit, ref):
  want = ref['binned_bin']
  out = _extract(vit,
                 ref['images_bin'],
                 layer=int(ref['key_layer']),
                 facet='key',
                 stride=4,
                 bin_hierarchy=2)
  assert out.descriptors.shape == (1, 5, 9, 17 * 36)
  np.testing.assert_allclose(out.descriptors.reshape(want.shape), want, atol=1e-4)


def _log_bin_oracle(x: np.ndarray, hierarchy: int) -> np.ndarray:
  """`_log_bin` position by position: windows averaged over their cells inside the grid."""
  _, rows, cols, _ = x.shape
  out = np.zeros(x.shape[:3] + ((1 + 8 * hierarchy) * x.shape[3],))
  for y in range(rows):
    for x_ in range(cols):
      bins = []
      for level in range(hierarchy):
        size = 3**level
        for i in (y - size, y, y + size):
          for j in (x_ - size, x_, x_ + size):
            if level and (i, j) == (y, x_):
              continue
            ci, cj = min(max(i, 0), rows - 1), min(max(j, 0), cols - 1)
            r = size // 2
            window = x[:, max(ci - r, 0):ci + r + 1, max(cj - r, 0):cj + r + 1]
            bins.append(window.mean(axis=(1, 2)))
      out[:, y, x_] = np.concatenate(bins, axis=-1)
  return out


@pytest.mark.parametrize('hierarchy', [1, 2, 3])
@pytest.mark.parametrize('shape', [(2, 5, 9, 3), (1, 12, 4, 2)])
def test_log_bin_matches_numpy(hierarchy, shape):
  x = np.random.default_rng(hierarchy).normal(size=shape).astype(np.float32)
  got = dino.log_bin(jnp.asarray(x), hierarchy)
  np.testing.assert_allclose(got, _log_bin_oracle(x, hierarchy), atol=1e-5)


def _keys_cubic(distance: float, a: float = -0.75) -> float:
  d = abs(distance)
  if d <= 1:
    return (a + 2) * d**3 - (a + 3) * d**2 + 1
  if d < 2:
    return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
  return 0.0


def _torch_bicubic_axis0(x: np.ndarray, size: int, scale: float) -> np.ndarray:
  """PyTorch's bicubic (align_corners=False, given scale) along axis 0, in float64 sums."""
  ratio = np.float32(1.0 / scale)
  out = np.zeros((size,) + x.shape[1:])
  for i in range(size):
    source = float(ratio * np.float32(i + 0.5) - np.float32(0.5))
    base = int(np.floor(source))
    for tap in range(base - 1, base + 3):
      out[i] += _keys_cubic(source - tap) * x[min(max(tap, 0), x.shape[0] - 1)]
  return out


@pytest.mark.parametrize('rows, cols', [(11, 11), (9, 13), (125, 125), (5, 40), (28, 28)])
def test_position_interpolation_matches_numpy_bicubic(rows, cols):
  n = 28
  grid = np.random.default_rng(rows * cols).normal(size=(n, n, 4)).astype(np.float32)
  if (rows, cols) == (n, n):
    want = grid  # dino-vit-features returns the native grid untouched
  else:
    want = _torch_bicubic_axis0(grid, rows, (rows + 0.1) / n)
    want = _torch_bicubic_axis0(want.swapaxes(0, 1), cols, (cols + 0.1) / n).swapaxes(0, 1)
  got = dino.interpolate_positions(jnp.asarray(grid), rows, cols)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize('case', ['sq', 'rect'])
def test_position_interpolation_matches_pytorch(vit, ref, case):
  _, params = vit
  positions = params['embeddings']['position_embeddings'][0, 1:].reshape(28, 28, 36)
  height, width = ref[f'images_{case}'].shape[1:3]
  got = dino.interpolate_positions(positions, 1 + (height - 8) // 4, 1 + (width - 8) // 4)
  np.testing.assert_allclose(got.reshape(-1, 36), ref[f'pos_{case}'], atol=1e-5)


def test_chunked_attention_equals_unchunked_and_batch_rows_are_independent(vit, ref):
  images = ref['images_sq']  # 122 tokens
  kwargs = dict(layer=2, facet='token', stride=4, include_cls=True, saliency=True)
  whole = _extract(vit, images, query_chunk=4096, **kwargs)
  chunked = _extract(vit, images, query_chunk=7, **kwargs)
  for field in ('descriptors', 'cls', 'saliency'):
    np.testing.assert_allclose(getattr(chunked, field), getattr(whole, field), atol=1e-5)
  alone = _extract(vit, images[1:], query_chunk=7, **kwargs)
  np.testing.assert_allclose(alone.descriptors[0], chunked.descriptors[1], atol=1e-5)


def test_token_facet_at_native_stride_equals_flax_vit_model(tmp_path):
  config = transformers.ViTConfig(hidden_size=24,
                                  num_hidden_layers=2,
                                  num_attention_heads=6,
                                  intermediate_size=48,
                                  image_size=32,
                                  patch_size=8,
                                  initializer_range=1.0)  # peaked attention: stable min-max
  model = transformers.FlaxViTModel(config, seed=3, add_pooling_layer=False)
  model.save_pretrained(tmp_path)
  arch, params = dino.load_vit(str(tmp_path))
  images = np.random.default_rng(0).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
  out = dino.extract(params,
                     jnp.asarray(images),
                     arch,
                     layer=1,
                     facet='token',
                     stride=8,
                     include_cls=True,
                     saliency=True)
  pixels = ((images + 1) / 2 - np.array(dino.IMAGENET_MEAN)) / np.array(dino.IMAGENET_STD)
  hf = model(pixels.transpose(0, 3, 1, 2), output_hidden_states=True, output_attentions=True)
  tokens = jnp.concatenate([out.cls[:, None], out.descriptors.reshape(2, 16, 24)], axis=1)
  np.testing.assert_allclose(tokens, hf.hidden_states[-1], atol=1e-5)
  norm = model.params['layernorm']
  tokens = np.asarray(tokens, np.float64)
  normed = (tokens - tokens.mean(
      -1, keepdims=True)) / np.sqrt(tokens.var(-1, keepdims=True) + config.layer_norm_eps)
  np.testing.assert_allclose(normed * norm['scale'] + norm['bias'], hf.last_hidden_state, atol=1e-4)
  cls_attention = np.asarray(hf.attentions[-1])[:, list(dino.SALIENCY_HEADS), 0, 1:].mean(1)
  low, high = cls_attention.min(1, keepdims=True), cls_attention.max(1, keepdims=True)
  np.testing.assert_allclose(out.saliency.reshape(2, 16), (cls_attention - low) / (high - low),
                             atol=1e-4)


def test_patch_grid_and_centres():
  assert dino.grid_size(256, 256, 8, 2) == (125, 125)
  assert dino.grid_size(224, 224, 8, 4) == (55, 55)
  centers = np.asarray(dino.patch_centers(125, 125, 8, 2))
  i, j = np.mgrid[0:125, 0:125]
  np.testing.assert_array_equal(centers[..., 0], 2 * j + 4)  # x follows the column
  np.testing.assert_array_equal(centers[..., 1], 2 * i + 4)
  assert centers[-1, -1].tolist() == [252.0, 252.0]


def test_extract_returns_patch_centres(vit, ref):
  out = _extract(vit, ref['images_rect'], layer=0, stride=4)
  assert out.centers.shape == (9, 13, 2)
  assert out.centers[0, 12].tolist() == [52.0, 4.0]
  assert out.cls is None and out.saliency is None


@pytest.mark.parametrize('kwargs, size, message', [
    (dict(layer=0, facet='attn'), 48, 'facet'),
    (dict(layer=3), 48, 'layer'),
    (dict(layer=-1), 48, 'layer'),
    (dict(layer=0, stride=3), 48, 'stride'),
    (dict(layer=0, stride=4), 50, 'stride'),
    (dict(layer=0, include_cls=True, bin_hierarchy=2), 48, 'include_cls'),
    (dict(layer=0, saliency=True, saliency_heads=(6,)), 48, 'saliency_heads'),
])
def test_bad_arguments_are_named(vit, kwargs, size, message):
  with pytest.raises(ValueError, match=message):
    _extract(vit, np.zeros((1, size, size, 3), np.float32), **kwargs)


def test_bad_image_shape_is_named(vit):
  with pytest.raises(ValueError, match='images'):
    _extract(vit, np.zeros((1, 48, 48), np.float32), layer=0)


def test_bfloat16_is_close_to_float32(vit, ref):
  kwargs = dict(layer=1, facet='key', stride=4)
  full = _extract(vit, ref['images_sq'], **kwargs).descriptors
  half = _extract(vit, ref['images_sq'], dtype=jnp.bfloat16, **kwargs).descriptors
  assert half.dtype == jnp.bfloat16
  error = np.abs(np.asarray(half, np.float32) - np.asarray(full))
  assert error.max() < 0.05 * np.abs(np.asarray(full)).max()


def test_query_chunks_bound_memory_of_a_256px_image_at_stride_2():
  """ViT-S/8 shapes, compiled only: 15,626 tokens fit in a few GB; unchunked they do not."""
  arch = dino.ViTArch(patch_size=8,
                      hidden_size=384,
                      num_heads=6,
                      num_layers=12,
                      position_grid=28,
                      layer_norm_eps=1e-6)

  def shaped(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)

  def dense(fan_in, fan_out):
    return {'kernel': shaped(fan_in, fan_out), 'bias': shaped(fan_out)}

  norm = {'scale': shaped(384), 'bias': shaped(384)}
  block = {
      'layernorm_before': norm,
      'layernorm_after': norm,
      'attention': {
          'attention': {
              name: dense(384, 384) for name in ('query', 'key', 'value')
          },
          'output': {
              'dense': dense(384, 384)
          },
      },
      'intermediate': {
          'dense': dense(384, 1536)
      },
      'output': {
          'dense': dense(1536, 384)
      },
  }
  params = {
      'embeddings': {
          'cls_token': shaped(1, 1, 384),
          'position_embeddings': shaped(1, 785, 384),
          'patch_embeddings': {
              'projection': {
                  'kernel': shaped(8, 8, 3, 384),
                  'bias': shaped(384)
              }
          },
      },
      'encoder': {
          'layer': {
              str(i): block for i in range(12)
          }
      },
  }
  kwargs = dict(layer=9, facet='key', stride=2, saliency=True)
  out = jax.eval_shape(functools.partial(dino.extract, arch=arch, **kwargs), params,
                       shaped(1, 256, 256, 3))
  assert out.descriptors.shape == (1, 125, 125, 384)
  assert out.saliency.shape == (1, 125, 125)

  def temp_bytes(query_chunk):
    compiled = dino.extract.lower(params,
                                  shaped(1, 256, 256, 3),
                                  arch,
                                  query_chunk=query_chunk,
                                  **kwargs).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  assert temp_bytes(1024) < 3e9 < 6e9 < temp_bytes(16384)
