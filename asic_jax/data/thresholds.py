"""The PCK length L of every image, in pixels of the S frame (DESIGN §5).

PCK counts a transferred keypoint correct iff its error is below `alpha * L`, where L is a
length of the TARGET image:

* `bbox`: the max side of the target's object box;
* `img`: S, the side of the square image;
* `kp_bbox`: the max side of the tight box around the target's annotated
  keypoints (invisible or padded rows never count; 0 when none is annotated).

Each loader computes its dataset's own kind from boxes and keypoints already in the S frame
(the square frame scales both axes alike, so lengths measured there equal the original
lengths times `SquareFrame.scale`); `loaders.load_collection` applies `eval.threshold`, once,
with `with_threshold`.
"""

import dataclasses

import numpy as np

from asic_jax.data import collection as collection_lib
from asic_jax.errors import UserError

THRESHOLD_KINDS = ('bbox', 'img', 'kp_bbox')


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
