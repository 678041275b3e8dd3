"""grid_sample against the released code (torch) and scipy.ndimage."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from asic_jax.ops import sampling
from conftest import load_reference


def _nhwc(x):
  return np.transpose(x, (0, 2, 3, 1))


@pytest.mark.parametrize('padding', ['border', 'zeros'])
def test_grid_sample_matches_torch_values_and_gradients(padding):
  ref = load_reference('grid_sample')
  image = jnp.asarray(_nhwc(ref['input']))
  grid = jnp.asarray(ref['grid'])
  cotangent = jnp.asarray(_nhwc(ref['cotangent']))
  assert ref['frac_grid_outside'] > 0.3  # both paddings are exercised

  def scalar(image, grid):
    out = jax.vmap(lambda i, g: sampling.grid_sample(i, g, padding))(image, grid)
    return (out * cotangent).sum(), out

  (_, out), (grad_image, grad_grid) = jax.value_and_grad(scalar, argnums=(0, 1),
                                                         has_aux=True)(image, grid)
  tol = dict(rtol=1e-5, atol=1e-5 * 75)  # 75: max |grad_grid| (README tolerance rule)
  np.testing.assert_allclose(out, _nhwc(ref[f'out_{padding}_f64']), rtol=1e-5, atol=2e-5)
  np.testing.assert_allclose(grad_image,
                             _nhwc(ref[f'grad_input_{padding}_f64']),
                             rtol=1e-5,
                             atol=2e-5)
  np.testing.assert_allclose(grad_grid, ref[f'grad_grid_{padding}_f64'], **tol)


@pytest.mark.parametrize('padding,mode', [('zeros', 'grid-constant'), ('border', 'nearest')])
def test_grid_sample_matches_scipy_map_coordinates(padding, mode):
  rng = np.random.default_rng(0)
  image = rng.normal(size=(13, 17, 3))
  coords = rng.uniform(-1.4, 1.4, size=(40, 2))
  with jax.enable_x64():
    out = np.asarray(sampling.grid_sample(jnp.asarray(image), jnp.asarray(coords), padding))
  col = (coords[:, 0] + 1) / 2 * (17 - 1)
  row = (coords[:, 1] + 1) / 2 * (13 - 1)
  expected = np.stack([
      ndimage.map_coordinates(image[..., c], [row, col], order=1, mode=mode, cval=0.0)
      for c in range(3)
  ], -1)
  np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_pixel_frame_round_trip_and_identity():
  grid = sampling.identity_grid(5, 7)
  assert grid.shape == (5, 7, 2)
  # Pixel (x=6, y=4) is the bottom-right corner: (1, 1); (0, 0) is (-1, -1).
  np.testing.assert_allclose(grid[4, 6], [1, 1])
  np.testing.assert_allclose(grid[0, 0], [-1, -1])
  np.testing.assert_allclose(grid[2, 3], [0, 0], atol=1e-7)
  pixels = jnp.asarray([[0.0, 0.0], [6.0, 4.0], [2.5, 1.25]])
  coords = sampling.pixel_to_normalized(pixels, (7, 5))
  np.testing.assert_allclose(coords[2], [-1 + 2 * 2.5 / 6, -1 + 2 * 1.25 / 4], rtol=1e-6)
  np.testing.assert_allclose(sampling.normalized_to_pixel(coords, (7, 5)), pixels, atol=1e-6)
  # Sampling an image at the identity returns it exactly.
  image = jnp.arange(5 * 7 * 2, dtype=jnp.float32).reshape(5, 7, 2)
  np.testing.assert_allclose(sampling.grid_sample(image, grid), image, atol=1e-5)


def test_resize_equals_corner_aligned_bilinear():
  rng = np.random.default_rng(1)
  image = rng.normal(size=(8, 8, 2)).astype(np.float32)
  out = np.asarray(sampling.resize(jnp.asarray(image), 4, 4))
  # align_corners=True: output pixel i reads input position i * (8 - 1) / (4 - 1).
  pos = np.arange(4) * 7 / 3
  expected = np.stack([
      ndimage.map_coordinates(image[..., c], np.meshgrid(pos, pos, indexing='ij'), order=1)
      for c in range(2)
  ], -1)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_block_mean_halves_like_the_released_flow_reduction():
  ref = load_reference('canonical_unwarp')
  np.testing.assert_allclose(sampling.block_mean(jnp.asarray(ref['flow']), 2),
                             ref['flow_res8_f64'],
                             atol=1e-6)
  with pytest.raises(ValueError, match='divide'):
    sampling.block_mean(jnp.zeros((1, 6, 6, 2)), 4)


def test_integer_pixels_convert_like_floats():
  pixels = jnp.asarray([[3, 4], [0, 6]], jnp.int32)
  np.testing.assert_allclose(sampling.pixel_to_normalized(pixels, 7),
                             sampling.pixel_to_normalized(pixels.astype(jnp.float32), 7))


def test_border_padding_gradient_is_zero_on_and_beyond_the_edges():
  # PyTorch's clip_coordinates_set_grad: d(clipped)/d(x) is 0 for x <= 0 and x >= W - 1
  # (edges included), 1 strictly inside; a central difference checks the inside.
  image = jnp.asarray(np.random.default_rng(0).standard_normal((4, 5, 1)), jnp.float32)

  def value(x, y):
    return sampling.grid_sample(image, jnp.stack([x, y])[None], 'border')[0, 0]

  for x, y in [(1.0, 0.3), (-1.0, 0.3), (1.2, -0.1), (0.4, 1.0), (0.4, -1.0), (0.4, -1.3)]:
    gx, gy = jax.grad(value, argnums=(0, 1))(jnp.float32(x), jnp.float32(y))
    assert (gx == 0.0) == (abs(x) >= 1.0) and (gy == 0.0) == (abs(y) >= 1.0), (x, y, gx, gy)
  eps = 1e-3
  gx = jax.grad(value)(jnp.float32(0.1), jnp.float32(0.3))
  numeric = (value(0.1 + eps, 0.3) - value(0.1 - eps, 0.3)) / (2 * eps)
  np.testing.assert_allclose(gx, numeric, rtol=1e-3)
