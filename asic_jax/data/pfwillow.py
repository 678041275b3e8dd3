"""PF-WILLOW: 100 images in 10 sub-folders of 4 categories, 10 keypoints each.

Layout under `root`:

  PF-dataset-WILLOW/<sub-folder>/<stem>.png   (at most 300 px wide, not square)
  PF-dataset-WILLOW/<sub-folder>/<stem>.mat   `pts_coord`: 2 x 10, row 0 = x, row 1 = y

`pts_coord` is MATLAB's, 1-based: 1 is subtracted. A category (car, duck,
motorbike, winebottle) is the collection of its sub-folders' images (30, 10,
30, 30); `groups` holds each image's sub-folder index in `SUBFOLDERS`, and the
evaluation pairs are all ordered pairs within each sub-folder (10 x 9 per
folder, 900 over the dataset). Stems repeat across sub-folders (car(M) and
car(S) both hold Cars_000a: the same file, as are all 30 repeated stems), so an image's
name is '<sub-folder>_<stem>'. Both copies stay (each sub-folder's evaluation pairs need
them); training never pairs a file with its copy (`data.pairs`).
The default PCK threshold is `kp_bbox` (every keypoint is annotated).
"""

import pathlib

import numpy as np
import scipy.io

from asic_jax.data import collection as collection_lib
from asic_jax.data import datasets
from asic_jax.data import images as images_lib
from asic_jax.data import thresholds as thresholds_lib
from asic_jax.errors import UserError

SUBFOLDERS = ('car(G)', 'car(M)', 'car(S)', 'duck(S)', 'motorbike(G)', 'motorbike(M)',
              'motorbike(S)', 'winebottle(M)', 'winebottle(wC)', 'winebottle(woC)')
CATEGORIES = ('car', 'duck', 'motorbike', 'winebottle')

_DATASET = 'PF-WILLOW'
_LAYOUT = ('the sub-folders ' + ', '.join(SUBFOLDERS) +
           ', each with <stem>.png images and <stem>.mat keypoints (pts_coord)')


def load_pfwillow(root: str | pathlib.Path, category: str, size: int) -> collection_lib.Collection:
  """One PF-WILLOW category as a collection (pairs and matches are added later).

  Args:
    root: the folder holding `PF-dataset-WILLOW/`.
    category: one of `CATEGORIES`.
    size: S, the side of the square images.

  Returns:
    A `Collection`: images `[N, S, S, 3]`; keypoints `[N, 10, 2]`, visibility
    `[N, 10]` and thresholds `[N]` in the S frame; groups `[N]`; eval_pairs =
    all ordered pairs within each sub-folder. No boxes.
  """
  datasets.check_category(_DATASET, category, CATEGORIES)
  base = datasets.require(pathlib.Path(root) / 'PF-dataset-WILLOW', _DATASET, _LAYOUT)
  squares, names, keypoints, groups, frames = [], [], [], [], []
  for group, subfolder in enumerate(SUBFOLDERS):
    if subfolder.split('(')[0] != category:
      continue
    folder = datasets.require(base / subfolder, _DATASET, _LAYOUT)
    paths = images_lib.list_images(folder)
    if not paths:
      raise datasets.missing_dataset(_DATASET, folder, 'PF-WILLOW images (<stem>.png)')
    for path in paths:
      image, frame = images_lib.square(images_lib.read_rgb(path), size)
      squares.append(image)
      frames.append(frame)
      names.append(f'{subfolder}_{path.stem}')
      keypoints.append(frame.points(_read_points(path.with_suffix('.mat'))))
      groups.append(group)
  if len({len(k) for k in keypoints}) != 1:
    raise UserError(f'PF-WILLOW {category}: the .mat files hold different keypoint counts')
  keypoints = np.stack(keypoints)
  visibility = np.ones(keypoints.shape[:2], bool)
  groups = np.asarray(groups, np.int32)
  lengths = thresholds_lib.thresholds('kp_bbox',
                                      size,
                                      len(names),
                                      keypoints=keypoints,
                                      visibility=visibility)
  return collection_lib.Collection(name=f'pfwillow_{category}',
                                   images=images_lib.to_unit_range(np.stack(squares)),
                                   names=tuple(names),
                                   keypoints=keypoints,
                                   visibility=visibility,
                                   thresholds=lengths,
                                   eval_pairs=collection_lib.eval_pairs_from_keypoints(
                                       keypoints, visibility, lengths, groups),
                                   groups=groups,
                                   threshold_kind='kp_bbox',
                                   frames=tuple(frames))


def _read_points(path: pathlib.Path) -> np.ndarray:
  """`[K, 2]` float64 0-based (x, y) from a PF-WILLOW `.mat` (`pts_coord`, 2 x K, 1-based)."""
  datasets.require(path, _DATASET, _LAYOUT)
  try:
    coords = np.asarray(scipy.io.loadmat(path)['pts_coord'], np.float64)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f'cannot read keypoints pts_coord from {path}: {e!r}') from e
  if coords.ndim != 2 or coords.shape[0] != 2:
    raise UserError(f'{path}: pts_coord must be 2 x K (x row, y row), got {coords.shape}')
  return coords.T - 1.0
