"""The `Collection` record: its checks, its pair list and its helpers."""

import numpy as np

from asic_jax.data import collection as collection_lib


def test_thresholds_belong_to_the_target():
  keypoints = np.zeros((3, 2, 2), np.float32)
  pairs = collection_lib.eval_pairs_from_keypoints(keypoints, np.ones((3, 2), bool),
                                                   np.asarray([10.0, 20.0, 30.0]))
  assert np.all(pairs.thresholds == np.asarray([10.0, 20.0, 30.0])[pairs.trg])
  assert np.all(pairs.src != pairs.trg) and len(pairs) == 6
