"""Thin-plate splines against kornia's reference values, scipy and invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from asic_jax.ops import sampling
from asic_jax.ops import tps
from conftest import load_reference


def _nhwc(x):
  return np.transpose(x, (0, 2, 3, 1))


def _numpy_spline(spline, coords):
  """f(v) = a0 + A v + sum_k w_k r^2 log r, written out in float64 numpy."""
  centres, weights, affine = (np.asarray(x, np.float64) for x in spline)
  r2 = ((coords[..., None, :] - centres)**2).sum(-1)
  kernel = 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1.0))
  return affine[0] + coords @ affine[1:] + kernel @ weights


def _map_coordinates(image, coords, align_corners):
  """Bilinear, zeros padding, of `image [H, W, C]` at normalised `coords [H', W', 2]`."""
  height, width, _ = image.shape
  if align_corners:
    col = (coords[..., 0] + 1) / 2 * (width - 1)
    row = (coords[..., 1] + 1) / 2 * (height - 1)
  else:
    col = ((coords[..., 0] + 1) * width - 1) / 2
    row = ((coords[..., 1] + 1) * height - 1) / 2
  return np.stack([
      ndimage.map_coordinates(image[..., c], [row, col], order=1, mode='grid-constant')
      for c in range(image.shape[-1])
  ], -1)


def test_identity_control_points_give_the_identity_warp():
  src, _ = tps.random_control_points(jax.random.key(0), 3)
  points = src.at[:, 4].set(jnp.asarray([[0.3, -0.2], [0.1, 0.1], [-0.4, 0.25]]))
  spline = tps.fit(points, points)
  np.testing.assert_allclose(spline.kernel_weights, 0.0, atol=1e-6)
  np.testing.assert_allclose(tps.sampling_grid(spline, 16, 20),
                             np.broadcast_to(sampling.identity_grid(16, 20), (3, 16, 20, 2)),
                             atol=1e-6)
  images = jax.random.normal(jax.random.key(1), (3, 16, 20, 4))
  np.testing.assert_allclose(tps.warp(images, spline), images, atol=1e-5)


@pytest.mark.parametrize('side', [2, 3, 4])
def test_fit_passes_through_control_points_and_meets_side_conditions(side):
  # A jittered side x side lattice (K = 4, 9, 16), offsets small against its
  # spacing, as for the control points of a warp. Scattered points, or offsets
  # near the spacing, push the condition number past 1e4: too much for float32.
  rng = np.random.default_rng(side)
  spacing = 2 / (side - 1)
  lattice = np.linspace(-1, 1, side)
  count = side * side
  points = np.stack(np.meshgrid(lattice, lattice), -1).reshape(count, 2)
  points = points + rng.uniform(-0.15, 0.15, size=(4, count, 2)) * spacing
  values = points + rng.uniform(-0.3, 0.3, size=points.shape) * spacing
  points, values = points.astype(np.float32), values.astype(np.float32)
  spline = tps.fit(jnp.asarray(points), jnp.asarray(values))
  assert spline.centres.shape == (4, count, 2)
  np.testing.assert_allclose(jax.vmap(tps.evaluate)(spline, jnp.asarray(points)), values, atol=2e-5)
  # Side conditions: sum_k w_k = 0 and sum_k w_k points_k = 0.
  weights = np.asarray(spline.kernel_weights, np.float64)
  np.testing.assert_allclose(weights.sum(1), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.einsum('bkc,bkd->bcd', points, weights), 0.0, atol=1e-5)
  # `evaluate` is the formula written out in numpy, at arbitrary points.
  coords = rng.uniform(-1.2, 1.2, size=(4, 7, 3, 2))
  expected = np.stack([_numpy_spline([x[b] for x in spline], coords[b]) for b in range(4)])
  np.testing.assert_allclose(jax.vmap(tps.evaluate)(spline, jnp.asarray(coords, jnp.float32)),
                             expected,
                             atol=2e-5)


def test_spline_matches_kornia_reference():
  """Our `f` is kornia's: same weights, and the same grid at each kornia version's `v`.

  The spline is the same function; the frames differ. kornia 0.9.0 evaluates `f`
  at pixel centres `v = (2 i + 1) / L - 1`, kornia <= 0.8.3 (`legacy_*`) at the
  corner-aligned `v = -1 + 2 i / (L - 1)`, which is our `identity_grid`. Both
  then sample with `align_corners=False`, where we sample with
  `align_corners=True` (DESIGN §8.2), so the full warps differ by up to half a
  pixel of frame scaling (see the next test); the grids agree.
  """
  ref = load_reference('tps')
  spline = tps.fit(jnp.asarray(ref['dst']), jnp.asarray(ref['src']))
  np.testing.assert_allclose(spline.kernel_weights, ref['tps_kernel_weights'], atol=1e-6)
  np.testing.assert_allclose(spline.affine, ref['tps_affine_weights'], atol=1e-6)
  np.testing.assert_allclose(spline.centres, ref['src'])

  height, width = ref['image'].shape[2:]
  np.testing.assert_allclose(tps.sampling_grid(spline, height, width),
                             ref['legacy_sampling_grid'],
                             atol=2e-6)
  xs = (2 * np.arange(width) + 1) / width - 1
  ys = (2 * np.arange(height) + 1) / height - 1
  pixel_centres = jnp.asarray(np.stack(np.meshgrid(xs, ys), -1), jnp.float32)
  grid_090 = jax.vmap(tps.evaluate, in_axes=(0, None))(spline, pixel_centres)
  np.testing.assert_allclose(grid_090, ref['sampling_grid'], atol=2e-6)


def test_warps_differ_from_kornia_only_by_the_sampling_frame():
  """kornia's warps are `align_corners=False` samples at its grid; ours are corner-aligned.

  The first half checks our reading of the reference (scipy reproduces every
  kornia output from its own grid with the `align_corners=False` pixel map
  `((x + 1) L - 1) / 2`); the second that our warp of the same inputs is the
  corner-aligned sample `(x + 1) (L - 1) / 2` at the same `f(v)`, and that the
  two really differ (border pixels half blend with the zero padding in kornia).
  """
  ref = load_reference('tps')
  images = {'image': _nhwc(ref['image']), 'mask': _nhwc(ref['mask']), 'flow': ref['flow']}
  kornia = {
      'image': _nhwc(ref['legacy_warped_image']),
      'mask': _nhwc(ref['legacy_warped_mask']),
      'flow': ref['legacy_warped_flow'],
  }
  grid = ref['legacy_sampling_grid'].astype(np.float64)
  for name, image in images.items():
    for b in range(2):
      np.testing.assert_allclose(_map_coordinates(image[b], grid[b], False),
                                 kornia[name][b],
                                 atol=1e-5)
  kornia_090 = _map_coordinates(_nhwc(ref['image'])[0], ref['sampling_grid'][0], False)
  np.testing.assert_allclose(kornia_090, _nhwc(ref['warped_image'])[0], atol=1e-5)

  spline = tps.fit(jnp.asarray(ref['dst']), jnp.asarray(ref['src']))
  for name, image in images.items():
    ours = np.asarray(tps.warp(jnp.asarray(image), spline))
    for b in range(2):
      np.testing.assert_allclose(ours[b], _map_coordinates(image[b], grid[b], True), atol=1e-5)
    assert np.abs(ours - kornia[name]).max() > 1e-2


def test_warp_matches_scipy_map_coordinates_under_jit():
  key_tps, key_image = jax.random.split(jax.random.key(3))
  spline = tps.random_tps(key_tps, 2)
  images = jax.random.normal(key_image, (2, 17, 23, 3))
  ours = np.asarray(jax.jit(tps.warp)(images, spline))
  identity = np.asarray(sampling.identity_grid(17, 23), np.float64)
  for b in range(2):
    coords = _numpy_spline([x[b] for x in spline], identity)
    expected = _map_coordinates(np.asarray(images[b], np.float64), coords, True)
    np.testing.assert_allclose(ours[b], expected, atol=2e-5)
  # Some output pixels fall outside the input: the zeros padding is exercised.
  assert (np.abs(ours) < 1e-12).any()


def test_random_control_points_distribution():
  src, dst = tps.random_control_points(jax.random.key(4), 2000, scale=0.3)
  assert src.shape == dst.shape == (2000, 5, 2)
  np.testing.assert_array_equal(src[7], [[-1, -1], [-1, 1], [1, -1], [1, 1], [0, 0]])
  offsets = np.asarray(dst - src)
  assert np.abs(offsets).max() <= 0.3
  # U(-s, s): mean 0, standard deviation s / sqrt(3); 20,000 draws per coordinate.
  np.testing.assert_allclose(offsets.reshape(-1, 10).mean(0), 0.0, atol=0.01)
  np.testing.assert_allclose(offsets.reshape(-1, 10).std(0), 0.3 / np.sqrt(3), rtol=0.05)
  again = tps.random_control_points(jax.random.key(4), 2000, scale=0.3)[1]
  np.testing.assert_array_equal(dst, again)
  spline = tps.random_tps(jax.random.key(4), 2000, scale=0.3)
  np.testing.assert_allclose(jax.vmap(tps.evaluate)(spline, dst), src, atol=2e-5)


def test_bad_input_is_named():
  with pytest.raises(ValueError, match='scale'):
    tps.random_control_points(jax.random.key(0), 2, scale=0.5)
  with pytest.raises(ValueError, match='points'):
    tps.fit(jnp.zeros((2, 2)), jnp.zeros((2, 2)))
  with pytest.raises(ValueError, match='values'):
    tps.fit(jnp.zeros((4, 2)), jnp.zeros((5, 2)))
  spline = tps.random_tps(jax.random.key(0), 2)
  with pytest.raises(ValueError, match='images'):
    tps.warp(jnp.zeros((8, 8, 3)), spline)
  with pytest.raises(ValueError, match='tps'):
    tps.warp(jnp.zeros((3, 8, 8, 3)), spline)
  with pytest.raises(ValueError, match='tps'):
    tps.evaluate(spline, jnp.zeros((4, 2)))
