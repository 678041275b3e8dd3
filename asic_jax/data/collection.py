"""The `Collection` record that every loader returns.

Frames: every pixel coordinate here is (x, y) in the S x S frame of `images`
(after square padding and resizing), with the corner-aligned convention of
`asic_jax.ops.sampling` (pixel centres at integers 0 ... S - 1).
"""

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class EvalPairs:
  """Ordered (source, target) pairs scored by PCK, each with its own keypoints.

  Attributes:
    src, trg: `[E]` int32 image indices.
    src_points, trg_points: `[E, K, 2]` float32 (x, y) pixels, S frame.
    visible: `[E, K]` bool; a keypoint counts only where both ends are annotated.
    thresholds: `[E]` float32, the PCK length L of the target (pixels, S frame);
      correct iff error < alpha * L.
  """
  src: np.ndarray
  trg: np.ndarray
  src_points: np.ndarray
  trg_points: np.ndarray
  visible: np.ndarray
  thresholds: np.ndarray

  def __len__(self) -> int:
    return len(self.src)


@dataclasses.dataclass(frozen=True)
class Collection:
  """One image collection, ready for training and evaluation.

  Attributes:
    name: a short name (category, folder), used in file names and reports.
    images: `[N, S, S, 3]` float32 in [-1, 1].
    names: N image names (file stems; unique).
    masks: `[N, S, S]` float32 soft foreground in [0, 1], or None.
    parts: `[N, S, S]` int32 part labels 0 ... num_parts - 1, `num_parts` for
      background, or None.
    num_parts: number of foreground part labels in `parts` (0 when None).
    pairs: `[P, 2]` int32 image indices (a, b), a != b: the pair list whose
      pseudo-matches train the KP loss; P = N (N - 1) / 2 for all pairs.
    matches: `[P, M, 5]` float32 (x_a, y_a, x_b, y_b, similarity) per pair, in
      pixels; similarity 0 marks padding (real matches have similarity > 0).
    keypoints: `[N, K, 2]` float32 (x, y) ground-truth keypoints, or None.
    visibility: `[N, K]` bool, or None.
    thresholds: `[N]` float32 PCK length L of each image as a target, or None.
    eval_pairs: the pairs PCK is scored on, or None (no ground truth).
    groups: `[N]` int32 sub-collection of each image (PF-WILLOW sub-folders;
      k-cycle tuples stay within one group), or None (one group).
    threshold_kind: how `thresholds` were made: 'bbox', 'img' or 'kp_bbox'.
    bboxes: `[N, 4]` float32 object boxes (x1, y1, x2, y2), S frame, or None.
    frames: N `SquareFrame`s, how each original photo became its S x S square (padding,
      scale, original size), or None (synthetic images are square from the start).
    masks_from: where `masks` came from: 'dataset' (the loader's), 'coseg' (co-segmentation),
      'photo' (no foreground: each whole photo), or '' (no masks yet).
    flipped: `[N]` bool, the images the alignment network sees mirrored (orientation-aware
      alignment, `features.orient`; `asic_jax.ops.flip`), or None (none). Everything else here
      stays in each photo's own pixels.
  """
  name: str
  images: np.ndarray
  names: tuple[str, ...]
  masks: Optional[np.ndarray] = None
  parts: Optional[np.ndarray] = None
  num_parts: int = 0
  pairs: Optional[np.ndarray] = None
  matches: Optional[np.ndarray] = None
  keypoints: Optional[np.ndarray] = None
  visibility: Optional[np.ndarray] = None
  thresholds: Optional[np.ndarray] = None
  eval_pairs: Optional[EvalPairs] = None
  groups: Optional[np.ndarray] = None
  threshold_kind: str = 'img'
  bboxes: Optional[np.ndarray] = None
  frames: Optional[tuple] = None
  masks_from: str = ''
  flipped: Optional[np.ndarray] = None

  def __post_init__(self):
    n = len(self.images)
    if self.images.ndim != 4 or self.images.shape[1] != self.images.shape[2] or (
        self.images.shape[3] != 3):
      raise ValueError(f'{self.name}: images must be [N, S, S, 3], got {self.images.shape}')
    if n < 2:
      raise ValueError(f'{self.name}: a collection needs at least two images, got {n}')
    if len(self.names) != n:
      raise ValueError(f'{self.name}: {len(self.names)} names for {n} images')
    if len(set(self.names)) != n:
      raise ValueError(f'{self.name}: image names are not unique')
    if self.frames is not None and len(self.frames) != n:
      raise ValueError(f'{self.name}: {len(self.frames)} frames for {n} images')
    size = self.images.shape[1]
    for field, shape in (('masks', (n, size, size)), ('parts', (n, size, size))):
      value = getattr(self, field)
      if value is not None and value.shape != shape:
        raise ValueError(f'{self.name}: {field} must be {shape}, got {value.shape}')
    if (self.pairs is None) != (self.matches is None):
      raise ValueError(f'{self.name}: pairs and matches come together')
    if self.pairs is not None:
      if self.pairs.ndim != 2 or self.pairs.shape[1] != 2:
        raise ValueError(f'{self.name}: pairs must be [P, 2], got {self.pairs.shape}')
      if self.matches.shape[:1] != self.pairs.shape[:1] or self.matches.shape[2:] != (5,):
        raise ValueError(f'{self.name}: matches must be [P, M, 5] for {len(self.pairs)} '
                         f'pairs, got {self.matches.shape}')
      if np.any(self.pairs[:, 0] == self.pairs[:, 1]):
        raise ValueError(f'{self.name}: a pair joins an image with itself')
    if self.flipped is not None and np.shape(self.flipped) != (n,):
      raise ValueError(f'{self.name}: flipped must be [{n}], got {np.shape(self.flipped)}')
    if (self.keypoints is None) != (self.visibility is None):
      raise ValueError(f'{self.name}: keypoints and visibility come together')

  @property
  def size(self) -> int:
    """S, the side of the square images."""
    return self.images.shape[1]

  def __len__(self) -> int:
    return len(self.images)

  def replace(self, **changes) -> 'Collection':
    return dataclasses.replace(self, **changes)

  def masks_or_ones(self) -> np.ndarray:
    """`[N, S, S]` float32: the masks, or all foreground when the collection has none."""
    if self.masks is None:
      return np.ones(self.images.shape[:3], np.float32)
    return self.masks.astype(np.float32)

  def photo_areas(self) -> np.ndarray:
    """`[N, S, S]` float32: 1 where each square shows its photo, 0 on its edge padding: the
    foreground of a collection without masks (`features.masks='none'`)."""
    frames = self.frames or (None,) * len(self)
    return np.stack([
        np.ones((self.size, self.size), np.float32) if f is None else f.area(self.size)
        for f in frames
    ])


def find_image(token, names: tuple[str, ...]) -> int | None:
  """An image's index from its name, else from an index (an int, or a string of digits;
  negative counts from the end); None when neither. A name wins over an index, so photos
  named '0042' are found by name."""
  if isinstance(token, str) and token in names:
    return names.index(token)
  text = str(token).strip()
  if isinstance(token, bool) or not text.lstrip('-').isdigit():
    return None
  index = int(text)
  return index % len(names) if -len(names) <= index < len(names) else None


def eval_pairs_from_keypoints(keypoints: np.ndarray,
                              visibility: np.ndarray,
                              thresholds: np.ndarray,
                              groups: np.ndarray | None = None) -> EvalPairs:
  """Every ordered pair (a, b), a != b (within a group when `groups` is given).

  Args:
    keypoints: `[N, K, 2]` per-image keypoints (x, y), S frame.
    visibility: `[N, K]` bool.
    thresholds: `[N]` PCK length of each image as a target.
    groups: `[N]` sub-collection ids, or None.

  Returns:
    `EvalPairs` whose keypoints are the images' own and whose threshold is the
    target's.
  """
  n = len(keypoints)
  src, trg = np.nonzero(~np.eye(n, dtype=bool))
  if groups is not None:
    same = groups[src] == groups[trg]
    src, trg = src[same], trg[same]
  return EvalPairs(src=src.astype(np.int32),
                   trg=trg.astype(np.int32),
                   src_points=keypoints[src].astype(np.float32),
                   trg_points=keypoints[trg].astype(np.float32),
                   visible=visibility[src] & visibility[trg],
                   thresholds=thresholds[trg].astype(np.float32))
