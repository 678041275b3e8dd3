"""The synthetic collection: boxes, thresholds and the layout of its pseudo-matches."""

import jax
import numpy as np
import pytest

from asic_jax.data import synthetic
from conftest import load_config


def test_thresholds_boxes_and_padding():
  config = load_config('tiny').data.synthetic
  config.num_images = 3
  config.matches_per_pair = 4096  # more than any foreground: every pair has padding rows
  collection = synthetic.make_synthetic(config, size=32, num_parts=4, seed=0)
  # 'bbox' thresholds: the longer side of each mask's tight box, inclusive pixel corners
  # (x2 - x1 is the span from the first to the last foreground column), as SPair's boxes.
  for mask, threshold in zip(collection.masks > 0.5, collection.thresholds):
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    assert threshold == max(cols[-1] - cols[0], rows[-1] - rows[0])
  for (a, _), matches in zip(collection.pairs, collection.matches):
    valid = matches[:, 4] > 0
    # At most one match per foreground pixel of a, valid rows first, padding all zero.
    assert 0 < valid.sum() <= np.sum(collection.masks[a] > 0.5)
    assert not valid[np.argmin(valid):].any()
    np.testing.assert_array_equal(matches[~valid], 0.0)
    # Every valid start lies on (within half a pixel of) a's foreground.
    starts = np.clip(np.rint(matches[valid, :2]).astype(int), 0, 31)
    near = np.zeros_like(valid[valid])
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        y, x = np.clip(starts[:, 1] + dy, 0, 31), np.clip(starts[:, 0] + dx, 0, 31)
        near |= collection.masks[a][y, x] > 0.5
    assert near.all()


def _backward_maps(seed: int, n: int, scale: float):
  """f_i (image point -> source point, normalised frame) of the collection's warps, written
  out in float64 numpy from the warp's definition (an affine map, then kornia's thin-plate
  spline: f(v) = a_0 + A v + sum_k w_k U(|v - c_k|), U(r) = r^2 log r)."""
  affine, spline = jax.device_get(
      synthetic._random_warps(jax.random.split(jax.random.key(seed), 3)[0], n, scale))
  affine, centres, weights, poly = (np.asarray(x, np.float64) for x in (affine, *spline))

  def f(i, v):
    moved = v @ affine[i, :, :2].T + affine[i, :, 2]
    r2 = np.sum((moved[:, None] - centres[i][None])**2, -1)
    u = np.where(r2 > 0, 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1.0)), 0.0)
    return poly[i, 0] + moved @ poly[i, 1:] + u @ weights[i]

  return f


def _normalised(pixels, size):
  return np.asarray(pixels, np.float64) * 2 / (size - 1) - 1


@pytest.mark.parametrize('outliers', [0.0, 0.3])
def test_inlier_matches_lie_on_the_true_warp(outliers):
  """Both ends of an inlier show the same source point: f_a(p_a) = f_b(p_b); outliers (a
  chosen fraction) do not."""
  config = load_config('tiny').data.synthetic
  config.num_images, config.noise_px, config.outlier_fraction = 5, 0.0, outliers
  size = 32
  collection = synthetic.make_synthetic(config, size=size, num_parts=4, seed=3)
  f = _backward_maps(3, 5, config.warp_scale)
  gaps = []
  for (a, b), matches in zip(collection.pairs, collection.matches):
    valid = matches[matches[:, 4] > 0]
    source_a = f(a, _normalised(valid[:, 0:2], size))
    source_b = f(b, _normalised(valid[:, 2:4], size))
    gaps.append(np.linalg.norm(source_a - source_b, axis=-1))
  gaps = np.concatenate(gaps)
  on_warp = gaps < 1e-3  # in pixels of the 32-px source: under 0.02
  assert len(gaps) > 250  # 10 pairs of up to 32
  assert abs(on_warp.mean() - (1 - outliers)) < 0.1
  if outliers:
    assert np.median(gaps[~on_warp]) > 0.1  # a random foreground pixel: far off


def test_keypoints_are_one_source_point_in_every_image():
  config = load_config('tiny').data.synthetic
  config.num_images = 4
  size = 32
  collection = synthetic.make_synthetic(config, size=size, num_parts=4, seed=1)
  f = _backward_maps(1, 4, config.warp_scale)
  seen = np.stack([f(i, _normalised(collection.keypoints[i], size)) for i in range(4)])  # [N, K, 2]
  visible = collection.visibility
  assert visible.sum(0).max() >= 2
  for k in range(seen.shape[1]):
    where = seen[visible[:, k], k]
    if len(where) > 1:
      np.testing.assert_allclose(where, np.broadcast_to(where[0], where.shape), atol=1e-3)
