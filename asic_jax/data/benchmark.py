"""What the benchmark loaders share: missing-dataset errors, categories, PCK thresholds.

PCK (DESIGN §5) counts a transferred keypoint correct iff its error is below
`alpha * L`, where L is a length of the TARGET image in pixels of the S frame:

* `bbox`: the max side of the target's object box;
* `img`: S, the side of the square image;
* `kp_bbox`: the max side of the tight box around the target's annotated
  keypoints (invisible or padded rows never count; 0 when none is annotated).

Every loader computes its thresholds here, from boxes and keypoints already in
the S frame (the square frame scales both axes alike, so lengths measured there
equal the original lengths times `SquareFrame.scale`).
"""

import dataclasses
import pathlib
from typing import Sequence

import numpy as np

from asic_jax.data import collection as collection_lib
from asic_jax.data import images
from asic_jax.errors import UserError

THRESHOLD_KINDS = ('bbox', 'img', 'kp_bbox')

# Where each dataset is published, for the missing-dataset message.
PUBLISHED_AT = {
    'SPair-71k': 'https://cvlab.postech.ac.kr/research/SPair-71k/',
    'CUB-200-2011': 'https://www.vision.caltech.edu/datasets/cub_200_2011/',
    'PF-WILLOW': 'https://www.di.ens.fr/willow/research/proposalflow/',
    'SAMURAI': 'https://markboss.me/publication/2022-samurai/',
}


def missing_dataset(dataset: str, path: str | pathlib.Path, layout: str) -> UserError:
  """The one-line error for a dataset not found at `path` (which should hold `layout`)."""
  return UserError(f'{dataset} not found: expected {path} holding {layout}; download '
                   f'{dataset} from {PUBLISHED_AT[dataset]} and set --config.data.root to '
                   'the folder that holds it')


def require(path: pathlib.Path, dataset: str, layout: str) -> pathlib.Path:
  """`path` if it exists, else the missing-dataset error for it."""
  if not path.exists():
    raise missing_dataset(dataset, path, layout)
  return path


def check_category(dataset: str, category, valid: Sequence) -> None:
  """A readable error for a category that is not one of `valid`."""
  if category not in valid:
    raise UserError(f'{dataset} has no category {category!r}; valid: '
                    f'{", ".join(str(v) for v in valid)}')


def threshold_kind(threshold: str | None, default: str) -> str:
  """The PCK threshold kind: `threshold` (None or '' = the dataset's `default`)."""
  kind = threshold or default
  if kind not in THRESHOLD_KINDS:
    raise UserError(f'eval.threshold must be one of {THRESHOLD_KINDS} (or empty for the '
                    f"dataset's protocol), got {threshold!r}")
  return kind


def thresholds(kind: str,
               size: int,
               num_images: int,
               *,
               bboxes: np.ndarray | None = None,
               keypoints: np.ndarray | None = None,
               visibility: np.ndarray | None = None) -> np.ndarray:
  """The PCK length L of each image as a target, S-frame pixels.

  Args:
    kind: 'bbox' | 'img' | 'kp_bbox' (see the module docstring).
    size: S.
    num_images: N.
    bboxes: `[N, 4]` (x1, y1, x2, y2), S frame; needed by 'bbox'.
    keypoints: `[N, K, 2]` (x, y), S frame; needed by 'kp_bbox'.
    visibility: `[N, K]` bool; needed by 'kp_bbox'.

  Returns:
    `[N]` float32.
  """
  if kind == 'img':
    return np.full(num_images, size, np.float32)
  if kind == 'bbox':
    if bboxes is None:
      raise UserError("eval.threshold='bbox' needs object boxes, which this dataset lacks")
    sides = np.asarray(bboxes, np.float64).reshape(-1, 2, 2)
    return np.max(sides[:, 1] - sides[:, 0], axis=-1).astype(np.float32)
  if kind == 'kp_bbox':
    if keypoints is None:
      raise UserError("eval.threshold='kp_bbox' needs keypoints, which this dataset lacks")
    return keypoint_box_sides(keypoints, visibility)
  raise UserError(f'eval.threshold must be one of {THRESHOLD_KINDS}, got {kind!r}')


def keypoint_box_sides(keypoints: np.ndarray, visibility: np.ndarray) -> np.ndarray:
  """`[N]` float32: max side of the tight box around each image's visible keypoints.

  Args:
    keypoints: `[N, K, 2]` (x, y).
    visibility: `[N, K]` bool; rows that are False are ignored whatever they hold.
  """
  keypoints = np.asarray(keypoints, np.float64)
  visible = np.asarray(visibility, bool)[..., None]
  low = np.min(np.where(visible, keypoints, np.inf), axis=1)
  high = np.max(np.where(visible, keypoints, -np.inf), axis=1)
  sides = np.max(high - low, axis=-1)
  return np.where(np.any(visible[..., 0], axis=1), sides, 0.0).astype(np.float32)


def boxes_to_frame(frame: images.SquareFrame, boxes: np.ndarray) -> np.ndarray:
  """`[..., 4]` boxes (x1, y1, x2, y2), original pixels -> the S frame of `frame`."""
  boxes = np.asarray(boxes, np.float64)
  return frame.points(boxes.reshape(boxes.shape[:-1] + (2, 2))).reshape(boxes.shape)


def with_threshold(collection: collection_lib.Collection,
                   threshold: str | None) -> collection_lib.Collection:
  """The collection scored with PCK length `threshold` (None or '': unchanged).

  Every image's length is recomputed from its boxes or keypoints, and every evaluation
  pair takes its target's (a pair's own keypoints never enter the length).
  """
  kind = threshold or collection.threshold_kind
  if kind == collection.threshold_kind:
    return collection
  lengths = thresholds(threshold_kind(kind, collection.threshold_kind),
                       collection.size,
                       len(collection),
                       bboxes=collection.bboxes,
                       keypoints=collection.keypoints,
                       visibility=collection.visibility)
  pairs = collection.eval_pairs
  if pairs is not None:
    pairs = dataclasses.replace(pairs, thresholds=lengths[pairs.trg])
  return collection.replace(thresholds=lengths, eval_pairs=pairs, threshold_kind=kind)
