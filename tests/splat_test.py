"""Splatting against a numpy loop; conservation of the splatted weight."""

import jax.numpy as jnp
import numpy as np

from asic_jax.ops import sampling, splat


def _reference(points, values, weights, height, width):
  """Bilinear splatting, one point and one tap at a time."""
  accumulated = np.zeros((height, width, values.shape[1]))
  total = np.zeros((height, width))
  for (x, y), value, w in zip(points, values, weights):
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
      tap = (1 - abs(x - xi)) * (1 - abs(y - yi)) * w
      if 0 <= xi < width and 0 <= yi < height:
        accumulated[yi, xi] += tap * value
        total[yi, xi] += tap
  return accumulated, total


def test_splat_matches_a_numpy_loop_inside_and_outside_the_image():
  rng = np.random.default_rng(0)
  height, width = 7, 9
  points = np.stack([rng.uniform(-1.5, width + 0.5, 200), rng.uniform(-1.5, height + 0.5, 200)], -1)
  values = rng.normal(size=(200, 3))
  weights = rng.uniform(0, 2, 200)
  accumulated, total = splat.splat(jnp.asarray(points), jnp.asarray(values), height, width,
                                   jnp.asarray(weights))
  ref_accumulated, ref_total = _reference(points, values, weights, height, width)
  np.testing.assert_allclose(accumulated, ref_accumulated, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(total, ref_total, rtol=1e-5, atol=1e-5)


def test_splat_conserves_the_count_of_points_inside():
  rng = np.random.default_rng(1)
  points = np.stack([rng.uniform(0, 12, 500), rng.uniform(0, 5, 500)], -1)
  points[:4] = [[0, 0], [12, 5], [12, 0], [0, 5]]  # the corners exactly
  _, total = splat.splat(jnp.asarray(points), jnp.ones((500, 1)), 6, 13)
  np.testing.assert_allclose(total.sum(), 500, rtol=1e-5)


def test_integer_points_land_on_one_pixel_and_normalize_averages_them():
  points = jnp.asarray([[2, 1], [2, 1], [0, 3]], jnp.int32)  # (x, y)
  values = jnp.asarray([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
  accumulated, total = splat.splat(points, values, 4, 3)
  expected_total = np.zeros((4, 3))
  expected_total[1, 2], expected_total[3, 0] = 2, 1
  np.testing.assert_array_equal(total, expected_total)
  mean = np.asarray(splat.normalize(accumulated, total))
  np.testing.assert_allclose(mean[1, 2], [2.0, 20.0])
  np.testing.assert_allclose(mean[3, 0], [5.0, 50.0])
  assert np.all(mean[expected_total == 0] == 0)


def test_identity_points_reproduce_the_image():
  # Splatting every pixel at its own identity-flow point is the identity (up to rounding).
  image = np.random.default_rng(2).uniform(size=(5, 6, 3)).astype(np.float32)
  points = sampling.normalized_to_pixel(sampling.identity_grid(5, 6).reshape(-1, 2), (6, 5))
  accumulated, total = splat.splat(points, image.reshape(-1, 3), 5, 6)
  np.testing.assert_allclose(total, 1.0, atol=1e-5)
  np.testing.assert_allclose(splat.normalize(accumulated, total), image, atol=1e-5)
