"""Tests of asic_jax.correspondences.matching against a brute-force numpy mutual NN."""

import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax.correspondences import matching
from asic_jax.models import dino

STRIDE, PATCH = 2, 8


def _brute_force(desc_a: np.ndarray, desc_b: np.ndarray):
  """Full cosine similarity matrix, argmax both ways (numpy: lowest index on ties)."""
  unit_a = desc_a / np.linalg.norm(desc_a, axis=-1, keepdims=True)
  unit_b = desc_b / np.linalg.norm(desc_b, axis=-1, keepdims=True)
  sims = unit_a.astype(np.float64) @ unit_b.T.astype(np.float64)
  nn_ab = sims.argmax(axis=1)
  nn_ba = sims.argmax(axis=0)
  mutual = nn_ba[nn_ab] == np.arange(len(desc_a))
  return nn_ab, sims[np.arange(len(desc_a)), nn_ab], nn_ba, mutual


def _patch_of(points: np.ndarray, width: int) -> np.ndarray:
  """Flat patch index of (x, y) pixel centres on the `dino.patch_centers` grid."""
  cols = (points[:, 0] - PATCH / 2) / STRIDE
  rows = (points[:, 1] - PATCH / 2) / STRIDE
  return (np.round(rows) * width + np.round(cols)).astype(int)


@pytest.mark.parametrize('block', [1, 4, 7, 35, 64])
def test_blockwise_equals_brute_force(block):
  rng = np.random.default_rng(0)
  desc_a = rng.standard_normal((35, 16)).astype(np.float32)
  desc_b = rng.standard_normal((41, 16)).astype(np.float32)
  # Exact ties across blocks: a's rows 3 and 30 are equal, as are b's columns 5 and 22.
  desc_a[30] = desc_a[3]
  desc_b[22] = desc_b[5]
  found = matching.mutual_nearest_neighbours(jnp.asarray(desc_a), jnp.asarray(desc_b), block=block)
  nn_ab, sim_ab, nn_ba, mutual = _brute_force(desc_a, desc_b)
  np.testing.assert_array_equal(np.asarray(found.nn_ab), nn_ab)
  np.testing.assert_array_equal(np.asarray(found.nn_ba), nn_ba)
  np.testing.assert_array_equal(np.asarray(found.mutual), mutual)
  np.testing.assert_allclose(np.asarray(found.sim_ab), sim_ab, atol=1e-6)
  assert mutual.any() and not mutual.all()
  # Ties resolved to the lower index, in both directions.
  assert 22 not in np.asarray(found.nn_ab) and 30 not in np.asarray(found.nn_ba)


def test_known_shift_is_recovered():
  rng = np.random.default_rng(1)
  height, width, channels = 6, 7, 32
  dy, dx = 1, -2
  desc_a = rng.standard_normal((height, width, channels)).astype(np.float32)
  # Image b's patch (i, j) holds a's patch (i - dy, j - dx) where that exists, else noise.
  desc_b = rng.standard_normal((height, width, channels)).astype(np.float32)
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  inside = (rows - dy >= 0) & (rows - dy < height) & (cols - dx >= 0) & (cols - dx < width)
  desc_b[inside] = desc_a[(rows - dy)[inside], (cols - dx)[inside]]
  centers = dino.patch_centers(height, width, PATCH, STRIDE)
  result = matching.match_pairs(jnp.asarray(np.stack([desc_a, desc_b])),
                                jnp.ones((2, height, width)),
                                centers,
                                np.asarray([[0, 1]]),
                                block=5)
  real = result.matches[0, :result.counts[0]]
  matched = dict(zip(_patch_of(real[:, :2], width), _patch_of(real[:, 2:4], width)))
  shifted_a = ((rows - dy) * width + (cols - dx))[inside]
  shifted_b = (rows * width + cols)[inside]
  for patch_a, patch_b in zip(shifted_a, shifted_b):
    assert matched[patch_a] == patch_b
  # In pixels: every match of a shifted patch moves by exactly the shift.
  kept = np.isin(_patch_of(real[:, :2], width), shifted_a)
  assert kept.sum() == inside.sum()
  np.testing.assert_allclose(real[kept, 2:4] - real[kept, :2],
                             np.broadcast_to([STRIDE * dx, STRIDE * dy], (kept.sum(), 2)))
  np.testing.assert_allclose(real[kept, 4], 1.0, atol=1e-5)


def test_foreground_drops_exactly_matches_with_a_background_end():
  rng = np.random.default_rng(2)
  height, width = 5, 6
  descriptors = rng.standard_normal((3, height, width, 8)).astype(np.float32)
  # Correlate images so that there are many mutual matches to filter.
  descriptors[1:] += 1.5 * descriptors[:1]
  soft = rng.uniform(0.0, 1.0, (3, height, width)).astype(np.float32)
  pairs = np.asarray([[0, 1], [2, 0], [1, 2]])
  centers = dino.patch_centers(height, width, PATCH, STRIDE)
  result = matching.match_pairs(jnp.asarray(descriptors),
                                jnp.asarray(soft),
                                centers,
                                pairs,
                                block=4)
  flat = descriptors.reshape(3, -1, 8)
  fg = soft.reshape(3, -1) >= 0.5
  dropped = 0
  for index, (a, b) in enumerate(pairs):
    nn_ab, sim_ab, _, mutual = _brute_force(flat[a], flat[b])
    keep = mutual & fg[a] & fg[b][nn_ab] & (sim_ab > 0)
    dropped += np.sum(mutual & ~keep)
    expected = {(i, nn_ab[i]) for i in np.flatnonzero(keep)}
    real = result.matches[index, :result.counts[index]]
    got = set(zip(_patch_of(real[:, :2], width), _patch_of(real[:, 2:4], width)))
    assert got == expected
    assert result.counts[index] == len(expected)
  assert dropped > 0


def test_pair_list_layout_and_cap():
  rng = np.random.default_rng(3)
  height, width = 4, 5
  descriptors = rng.standard_normal((3, height, width, 8)).astype(np.float32)
  descriptors[1] += 2.0 * descriptors[0]
  foreground = np.ones((3, height, width), bool)
  foreground[2] = False  # image 2 has no foreground: its pairs have no match
  pairs = np.asarray([[0, 1], [0, 2], [1, 0], [2, 1]])
  centers = dino.patch_centers(height, width, PATCH, STRIDE)
  full = matching.match_pairs(jnp.asarray(descriptors), jnp.asarray(foreground), centers, pairs)
  counts = full.counts
  assert counts.dtype == np.int32 and counts[1] == counts[3] == 0 and counts[0] > 1
  assert counts[0] == counts[2]  # mutual NN is symmetric
  assert full.matches.shape == (4, counts.max(), 5) and full.matches.dtype == np.float32
  for index, count in enumerate(counts):
    real, padding = full.matches[index, :count], full.matches[index, count:]
    assert np.all(real[:, 4] > 0) and np.all(np.diff(real[:, 4]) <= 0)
    np.testing.assert_array_equal(padding, 0.0)
  # Pair (1, 0) holds the matches of (0, 1) with the ends swapped.
  np.testing.assert_allclose(np.sort(full.matches[2, :counts[2], :4], axis=0),
                             np.sort(full.matches[0, :counts[0]][:, [2, 3, 0, 1]], axis=0))
  capped = matching.match_pairs(jnp.asarray(descriptors),
                                jnp.asarray(foreground),
                                centers,
                                pairs,
                                max_matches=2)
  np.testing.assert_array_equal(capped.counts, np.minimum(counts, 2))
  assert capped.matches.shape == (4, 2, 5)
  np.testing.assert_allclose(capped.matches[0], full.matches[0, :2])


def test_non_positive_similarity_is_dropped():
  # One patch per image, opposite descriptors: a mutual pair with similarity -1.
  descriptors = jnp.asarray([[[[1.0, 0.0]]], [[[-1.0, 0.0]]]])
  centers = dino.patch_centers(1, 1, PATCH, STRIDE)
  result = matching.match_pairs(descriptors, jnp.ones((2, 1, 1)), centers, np.asarray([[0, 1]]))
  assert result.counts.tolist() == [0] and result.matches.shape == (1, 0, 5)
  found = matching.mutual_nearest_neighbours(descriptors[0, 0], descriptors[1, 0], block=1)
  assert bool(found.mutual[0]) and float(found.sim_ab[0]) == pytest.approx(-1.0)
