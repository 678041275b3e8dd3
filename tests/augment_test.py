"""Colour augmentation against numpy / colorsys / scipy versions of the published formulas."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from asic_jax.ops import augment

LUMA = np.array([0.299, 0.587, 0.114])


def np_brightness(x, f):
  return np.clip(x * f, 0, 1)


def np_contrast(x, f):
  return np.clip(f * x + (1 - f) * (x @ LUMA).mean(), 0, 1)


def np_saturation(x, f):
  return np.clip(f * x + (1 - f) * (x @ LUMA)[..., None], 0, 1)


def np_hue(x, shift):
  out = np.empty_like(x)
  for index in np.ndindex(x.shape[:-1]):
    h, s, v = colorsys.rgb_to_hsv(*x[index])
    out[index] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
  return out


def np_gray(x):
  return np.repeat((x @ LUMA)[..., None], 3, -1)


def np_blur(x, sigma):
  taps = np.exp(-np.array([-1.0, 0.0, 1.0])**2 / (2 * sigma**2))
  taps /= taps.sum()
  # scipy's 'mirror' reflects about the edge pixel without repeating it: torch's 'reflect'.
  rows = ndimage.correlate1d(x, taps, axis=0, mode='mirror')
  return ndimage.correlate1d(rows, taps, axis=1, mode='mirror')


def np_solarize(x, threshold, addition):
  y = np.clip(x + addition, 0, 1)
  return np.where(y < threshold, y, 1 - y)


def np_pipeline(image, p):
  """The whole augmentation of one [-1, 1] image with scalar params `p`."""
  x = (image + 1) / 2
  if p.jitter:
    ops = (lambda y: np_brightness(y, p.brightness), lambda y: np_contrast(y, p.contrast),
           lambda y: np_saturation(y, p.saturation), lambda y: np_hue(y, p.hue))
    for op in p.order:
      x = ops[op](x)
  if p.gray:
    x = np_gray(x)
  if p.blur:
    x = np_blur(x, p.sigma)
  if p.solarize:
    x = np_solarize(x, p.threshold, p.addition)
  return x * 2 - 1


def _images(shape, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 1, size=shape)


@pytest.mark.parametrize('name,op,np_op,param', [
    ('brightness', augment.adjust_brightness, np_brightness, 1.4),
    ('brightness', augment.adjust_brightness, np_brightness, 0.6),
    ('contrast', augment.adjust_contrast, np_contrast, 1.4),
    ('contrast', augment.adjust_contrast, np_contrast, 0.6),
    ('saturation', augment.adjust_saturation, np_saturation, 1.2),
    ('saturation', augment.adjust_saturation, np_saturation, 0.0),
    ('hue', augment.adjust_hue, np_hue, 0.1),
    ('hue', augment.adjust_hue, np_hue, -0.37),
    ('blur', augment.gaussian_blur, np_blur, 0.1),
    ('blur', augment.gaussian_blur, np_blur, 1.7),
])
def test_single_ops_match_numpy(name, op, np_op, param):
  x = _images((6, 7, 3))
  x[0, :3] = [[0.5, 0.5, 0.5], [0.9, 0.9, 0.1], [0.0, 0.0, 0.0]]  # grey, ties, black
  out = np.asarray(op(jnp.asarray(x, jnp.float32), jnp.float32(param)))
  expected = np_op(x, param)
  np.testing.assert_allclose(out, expected, atol=2e-6, err_msg=name)
  if name in ('brightness', 'contrast', 'saturation') and param > 1:
    assert (expected == 1).any()  # the clamp is exercised


def test_grayscale_and_solarize_match_numpy():
  x = _images((5, 4, 3), seed=1)
  np.testing.assert_allclose(augment.grayscale(jnp.asarray(x, jnp.float32)), np_gray(x), atol=1e-6)
  for threshold, addition in [(0.45, 0.08), (0.58, -0.1)]:
    out = augment.solarize(jnp.asarray(x, jnp.float32), jnp.float32(threshold),
                           jnp.float32(addition))
    np.testing.assert_allclose(out, np_solarize(x, threshold, addition), atol=1e-6)


def test_apply_jitter_matches_numpy_pipeline_under_jit():
  images = _images((12, 6, 7, 3), seed=2) * 2 - 1
  params = augment.draw_jitter(jax.random.key(5), 12)
  # Switch the ops on and off by the bits of the sample index (jitter on in 3 of 4),
  # so that every op is both on and off somewhere, alone and combined.
  bits = (np.arange(12)[:, None] >> np.arange(4)) & 1 == 1
  params = params._replace(jitter=jnp.asarray(bits[:, 0] | bits[:, 1]),
                           gray=jnp.asarray(bits[:, 1]),
                           blur=jnp.asarray(bits[:, 2]),
                           solarize=jnp.asarray(bits[:, 3]))
  assert len({tuple(o) for o in np.asarray(params.order)}) > 3  # orders differ per sample
  out = np.asarray(jax.jit(augment.apply_jitter)(jnp.asarray(images, jnp.float32), params))
  numpy_params = jax.tree.map(np.asarray, params)
  for b in range(12):
    sample = jax.tree.map(lambda leaf, b=b: leaf[b], numpy_params)
    np.testing.assert_allclose(out[b],
                               np_pipeline(images[b], sample),
                               atol=1e-5,
                               err_msg=f'sample {b}')


def test_zero_probabilities_are_the_identity():
  images = jnp.asarray(_images((4, 8, 8, 3), seed=3) * 2 - 1, jnp.float32)
  out = augment.color_jitter(jax.random.key(0),
                             images,
                             jitter_prob=0.0,
                             gray_prob=0.0,
                             blur_prob=0.0,
                             solarize_prob=0.0)
  np.testing.assert_array_equal(out, images)


def test_output_stays_in_range():
  images = _images((16, 8, 8, 3), seed=4) * 2 - 1
  images[:, :3, :3] = 1  # white and black blocks survive the blur
  images[:, 5:, 5:] = -1
  images[:, 0, 4] = [-1, 1, -1]
  out = augment.color_jitter(jax.random.key(1),
                             jnp.asarray(images, jnp.float32),
                             brightness=0.9,
                             contrast=0.9,
                             saturation=0.9,
                             hue=0.5,
                             jitter_prob=1.0,
                             gray_prob=0.5,
                             blur_prob=1.0,
                             solarize_prob=0.5,
                             solarize_addition=0.45)
  assert out.dtype == jnp.float32 and out.shape == images.shape
  assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
  # The range is used, not squashed (solarized samples stay below ~0.2 by design).
  assert float(out.min()) < -0.9 and float(out.max()) > 0.9


@pytest.mark.parametrize('option,prob', [('jitter_prob', 0.8), ('gray_prob', 0.2),
                                         ('blur_prob', 0.1), ('solarize_prob', 0.2)])
def test_each_op_fires_at_its_probability(option, prob):
  count = 400
  images = jnp.asarray(_images((count, 4, 4, 3), seed=5) * 2 - 1, jnp.float32)
  options = dict(jitter_prob=0.0, gray_prob=0.0, blur_prob=0.0, solarize_prob=0.0)
  options[option] = prob
  out = augment.color_jitter(jax.random.key(7), images, **options)
  changed = np.asarray(jnp.any(out != images, axis=(1, 2, 3)))
  # Binomial(400, p): 4 standard deviations.
  assert abs(changed.mean() - prob) < 4 * np.sqrt(prob * (1 - prob) / count)


def test_drawn_parameters_follow_their_distributions():
  params = jax.tree.map(np.asarray, augment.draw_jitter(jax.random.key(9), 2000))
  for name, low, high in [('brightness', 0.6, 1.4), ('contrast', 0.6, 1.4),
                          ('saturation', 0.8, 1.2), ('hue', -0.1, 0.1), ('sigma', 0.1, 2.0),
                          ('threshold', 0.4, 0.6), ('addition', -0.1, 0.1)]:
    values = getattr(params, name)
    assert low <= values.min() and values.max() <= high, name
    # U(low, high): mean (low + high) / 2, sd (high - low) / sqrt(12); 2000 draws.
    np.testing.assert_allclose(values.mean(), (low + high) / 2, atol=0.02 * (high - low))
    np.testing.assert_allclose(values.std(), (high - low) / np.sqrt(12), rtol=0.06)
  np.testing.assert_array_equal(np.sort(params.order, axis=1), np.tile(np.arange(4), (2000, 1)))
  first = np.bincount(params.order[:, 0], minlength=4) / 2000
  np.testing.assert_allclose(first, 0.25, atol=0.04)
  for name, prob in [('jitter', 0.8), ('gray', 0.2), ('blur', 0.1), ('solarize', 0.2)]:
    np.testing.assert_allclose(getattr(params, name).mean(), prob, atol=0.04, err_msg=name)


def test_bad_input_is_named():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match='gray_prob'):
    augment.draw_jitter(key, 2, gray_prob=1.5)
  with pytest.raises(ValueError, match='hue'):
    augment.draw_jitter(key, 2, hue=0.6)
  with pytest.raises(ValueError, match='blur_sigma'):
    augment.draw_jitter(key, 2, blur_sigma=(2.0, 1.0))
  with pytest.raises(ValueError, match='solarize_addition'):
    augment.draw_jitter(key, 2, solarize_addition=0.5)
  with pytest.raises(ValueError, match='images'):
    augment.color_jitter(key, jnp.zeros((2, 8, 8, 1)))
  with pytest.raises(ValueError, match='params'):
    augment.apply_jitter(jnp.zeros((3, 8, 8, 3)), augment.draw_jitter(key, 2))
