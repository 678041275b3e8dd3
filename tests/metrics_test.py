"""PCK, per-pair PCK, k-cycle tuples and cycle self-consistency against the released code's
values and hand-computed cases."""

import numpy as np
import pytest

from asic_jax.evaluation import metrics
from conftest import load_reference


def test_pck_equals_the_released_compute_pck():
  ref = load_reference('pck')
  args = (ref['pred'], ref['gt'], ref['vis'])
  np.testing.assert_array_equal(
      metrics.pck(*args, ref['thresholds'], alphas=ref['alphas']).astype(np.float32),
      ref['pck_spair'])
  np.testing.assert_allclose(metrics.pck(*args, ref['thresholds']),
                             ref['pck_spair_default_alphas'],
                             rtol=1e-6)
  assert np.allclose(ref['default_alphas'], metrics.ALPHAS)
  img = np.full(len(ref['pred']), float(ref['img_size']))  # CUB style: L = S
  np.testing.assert_allclose(metrics.pck(*args, img, alphas=ref['alphas']),
                             ref['pck_cub'],
                             rtol=1e-6)
  np.testing.assert_allclose(metrics.pck(*args, img), ref['pck_cub_default_alphas'], rtol=1e-6)


def test_pck_is_strict_and_per_pair_averages_pairs():
  gt = np.zeros((2, 2, 2))
  pred = np.asarray([[[1, 0], [3, 0]], [[0, 0], [9, 9]]], np.float32)
  visible = np.asarray([[True, True], [True, False]])
  # Pair 0: errors 1 and 3 against L = 10; pair 1: error 0 (the error-9 row is not visible).
  # alpha 0.1: 1 is not < 1 (strict), 0 is; 0.3: also 1; 0.4: all three.
  np.testing.assert_allclose(metrics.pck(pred, gt, visible, [10, 10], alphas=(0.1, 0.3, 0.4)),
                             [1 / 3, 2 / 3, 1.0])
  # Per pair: pair 0 scores 0/2 then 2/2, pair 1 scores 1/1.
  np.testing.assert_allclose(metrics.pck_per_pair(pred, gt, visible, [10, 10], alphas=(0.1, 0.4)),
                             [0.5, 1.0])


def test_tuples_are_distinct_within_a_group_and_seeded():
  groups = np.asarray([0, 0, 0, 1, 1, 2, 2, 2, 2])
  tuples = metrics.sample_tuples(9, 3, 50, groups=groups, seed=3)
  assert tuples.shape == (50, 3)
  assert all(len(set(t)) == 3 and len(set(groups[t])) == 1 for t in tuples)
  assert not np.isin(tuples, [3, 4]).any()  # group 1 has only 2 images
  np.testing.assert_array_equal(tuples, metrics.sample_tuples(9, 3, 50, groups=groups, seed=3))
  with pytest.raises(ValueError, match='no group holds 4 images'):
    metrics.sample_tuples(3, 4, 5)


def test_cycle_consistency_counts_points_that_do_not_return():
  # A transfer that moves every point 3 px right on the way out and not at all on the way
  # back: each point returns 3 px off, beyond alpha * S = 2 px at alpha 0.25, within 4 px
  # at 0.5.
  size = 8
  fn = lambda s, t, p: np.asarray(p) + np.where(s[:, None, None] == 0, [3.0, 0.0], 0.0)
  tuples = np.asarray([[0, 1]])
  values, counted = metrics.cycle_consistency(fn,
                                               tuples,
                                               np.ones((2, size, size)),
                                               size,
                                               points=4,
                                               alphas=(0.25, 0.5))
  np.testing.assert_array_equal(values, [0.0, 1.0])
  assert counted == 4
