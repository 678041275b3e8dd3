"""The synthetic collection: boxes, thresholds and the layout of its pseudo-matches."""

import numpy as np

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
