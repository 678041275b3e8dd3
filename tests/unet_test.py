"""The U-Net against a float64 numpy forward with PyTorch's layer semantics."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax.models.unet import UNet

# Widths 4, 8, 16, 32, 64: the real layout at a cost a 2-core CPU pays in seconds.
_TINY = 1 / 16


@functools.cache
def _tiny_variables():
  """Initial variables of the tiny U-Net for 32 px images.

  An 'rbg' key: XLA:CPU compiles threefry for ~40 initialisers in ~30 s, rbg in ~4 s; the
  initialisers' distributions are the same.
  """
  init = jax.jit(functools.partial(UNet(channel_multiplier=_TINY).init, train=False))
  return init(jax.random.key(0, impl='rbg'), jnp.zeros((2, 32, 32, 3)))


# --- numpy oracle: PyTorch semantics of Conv2d, BatchNorm2d, MaxPool2d, ConvTranspose2d ---


def _conv3x3(x, kernel):
  """Cross-correlation, zero padding 1: x [B, H, W, C], kernel [3, 3, C, O]."""
  height, width = x.shape[1:3]
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(padded[:, dy:dy + height, dx:dx + width] @ kernel[dy, dx]
             for dy in range(3)
             for dx in range(3))


def _batch_norm(x, params, stats):
  """Normalises with `stats` (running averages), or with batch moments when None."""
  if stats is None:
    stats = {'mean': x.mean(axis=(0, 1, 2)), 'var': x.var(axis=(0, 1, 2))}
  y = (x - stats['mean']) / np.sqrt(stats['var'] + 1e-5) * params['scale'] + params['bias']
  return y, stats


def _part(stats, *keys):
  """`stats[key0][key1]...`, or None (train mode) when `stats` is None."""
  for key in keys:
    stats = None if stats is None else stats[key]
  return stats


def _double_conv(x, params, stats):
  used = {}
  for i in (1, 2):
    x = _conv3x3(x, params[f'conv{i}']['kernel'])
    x, used[f'bn{i}'] = _batch_norm(x, params[f'bn{i}'], _part(stats, f'bn{i}'))
    x = np.maximum(x, 0.0)
  return x, used


def _max_pool(x):
  batch, height, width, channels = x.shape
  return x.reshape(batch, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))


def _conv_transpose(x, kernel, bias):
  """PyTorch's 2x2 stride-2 transposed conv: y[2i + a, 2j + b] = K[a, b] @ x[i, j]."""
  batch, height, width = x.shape[:3]
  y = np.einsum('bijc,uvoc->biujvo', x, kernel)
  return y.reshape(batch, 2 * height, 2 * width, -1) + bias


def _oracle(params, x, stats=None):
  """The U-Net: `stats` None is train mode; returns the output and the statistics used."""
  used = {}
  x, used['inc'] = _double_conv(x, params['inc'], _part(stats, 'inc'))
  skips = []
  for i in range(1, 5):
    skips.append(x)
    name = f'down{i}'
    x, used[name] = _double_conv(_max_pool(x), params[name], _part(stats, name))
  for i, skip in enumerate(skips[::-1], start=1):
    up = params[f'up{i}']
    x = _conv_transpose(x, up['up']['kernel'], up['up']['bias'])
    x, conv_stats = _double_conv(np.concatenate([skip, x], -1), up['conv'],
                                 _part(stats, f'up{i}', 'conv'))
    used[f'up{i}'] = {'conv': conv_stats}
  head = params['head']
  return x @ head['kernel'][0, 0] + head['bias'], used


def _perturbed(tree, rng, scale):
  return jax.tree.map(lambda a: np.asarray(a, np.float64) + scale * rng.normal(size=a.shape), tree)


@pytest.mark.parametrize('train', [True, False])
def test_forward_and_running_stats_match_numpy_oracle(train):
  model = UNet(channel_multiplier=_TINY)
  variables = _tiny_variables()
  rng = np.random.default_rng(0)
  # A non-zero head and BatchNorm affine maps away from (1, 0) make every layer count.
  params = _perturbed(variables['params'], rng, 0.1)
  images = rng.uniform(-1, 1, size=(2, 32, 32, 3))
  # Running statistics: the batch moments of other images, so that they differ from the
  # batch's own and keep activations at a realistic scale.
  _, stats = _oracle(params, rng.uniform(-1, 1, size=(2, 32, 32, 3)))

  variables = {'params': params, 'batch_stats': stats}
  out, updates = model.apply(variables,
                             images.astype(np.float32),
                             train=train,
                             mutable=['batch_stats'])
  expected, moments = _oracle(params, images, None if train else stats)

  assert out.shape == (2, 32, 32, 2) and out.dtype == jnp.float32
  assert np.abs(expected).max() > 0.1  # the check is not against zeros
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
  # PyTorch's update with momentum 0.1 (the biased batch variance, see unet.py).
  expected_stats = (jax.tree.map(lambda old, new: 0.9 * old + 0.1 * new, stats, moments)
                    if train else stats)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               jax.device_get(updates['batch_stats']), expected_stats)


def test_parameter_count_and_widths_match_released_unet():
  model = UNet(channel_multiplier=0.5)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                             jnp.zeros((1, 16, 16, 3)))
  # The released UNet(3, 2, mf=0.5, bilinear=False) has 7,763,074 parameters: BatchNorm
  # scale and bias count, running statistics do not.
  assert sum(math.prod(a.shape) for a in jax.tree.leaves(variables['params'])) == 7_763_074
  params = variables['params']
  assert params['inc']['conv1']['kernel'].shape == (3, 3, 3, 32)
  down_widths = [params[f'down{i}']['conv2']['kernel'].shape[-1] for i in range(1, 5)]
  assert down_widths == [64, 128, 256, 512]
  assert params['up1']['up']['kernel'].shape == (2, 2, 256, 512)  # [2, 2, out, in]
  assert params['up1']['conv']['conv1']['kernel'].shape == (3, 3, 512, 256)
  assert params['up4']['conv']['conv2']['kernel'].shape == (3, 3, 32, 32)
  assert params['head']['kernel'].shape == (1, 1, 32, 2)


def test_initialisers_are_pytorch_defaults():
  params = _tiny_variables()['params']
  # Conv2d: U(-b, b), b = 1 / sqrt(fan_in), fan_in = 64 * 9; std b / sqrt(3).
  kernel = np.asarray(params['down4']['conv2']['kernel'])
  bound = 1 / math.sqrt(64 * 9)
  assert np.abs(kernel).max() <= bound
  np.testing.assert_allclose(kernel.std(), bound / math.sqrt(3), rtol=0.03)
  # ConvTranspose2d (64 -> 32): PyTorch's fan_in is out_channels * 4 = 128.
  up = params['up1']['up']
  bound = 1 / math.sqrt(32 * 4)
  assert np.abs(up['kernel']).max() <= bound and np.abs(up['bias']).max() <= bound
  np.testing.assert_allclose(np.asarray(up['kernel']).std(), bound / math.sqrt(3), rtol=0.05)
  # The head starts at exactly zero, BatchNorm at the identity affine map.
  assert not np.any(params['head']['kernel']) and not np.any(params['head']['bias'])
  np.testing.assert_array_equal(params['inc']['bn1']['scale'], 1.0)
  np.testing.assert_array_equal(params['inc']['bn1']['bias'], 0.0)


def test_zero_head_gives_zero_residual_in_both_modes():
  model = UNet(channel_multiplier=_TINY)
  images = np.random.default_rng(1).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
  for train in (True, False):
    out, _ = model.apply(_tiny_variables(), images, train=train, mutable=['batch_stats'])
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize('shape,message', [((1, 24, 32, 3), 'multiples of 16'),
                                           ((16, 16, 3), r'\[B, H, W, C\]')])
def test_bad_image_shape_is_a_clear_error(shape, message):
  model = UNet(channel_multiplier=_TINY)
  with pytest.raises(ValueError, match=message):
    model.init(jax.random.key(0), jnp.zeros(shape), train=False)
