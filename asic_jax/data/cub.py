"""CUB-200-2011: one bird class's test images, cropped around the bird as ACSM does.

Layout under `root`:

  CUB_200_2011/images.txt                 <image id> <relative path>
  CUB_200_2011/image_class_labels.txt     <image id> <class id>
  CUB_200_2011/train_test_split.txt       <image id> <is training image>
  CUB_200_2011/bounding_boxes.txt         <image id> <x> <y> <width> <height>
  CUB_200_2011/parts/part_locs.txt        <image id> <part id> <x> <y> <visible>
  CUB_200_2011/images/<relative path>
  CUB_200_2011/cachedir/cub/data/test_cub_cleaned.mat   (optional: ACSM's split)

The image list: the ACSM cleaned test split when its `.mat` is present (where
the released `datasets/cub.py` reads it; its `images` struct array gives
`rel_path`, `id` and `bbox` with fields x1, y1, x2, y2), the paper's 15-20
images per class; else CUB's own test split of the class, with a warning that
numbers are not comparable with the paper's. The ACSM masks in the `.mat` are
not used: masks come from DINO co-segmentation, as for every dataset (§8.5).

Coordinates: CUB's text files and ACSM's `.mat` are 1-based (ACSM's boxes are
exactly the text boxes with x2 = x + width - 1, and both ACSM and the released
code subtract 1 from the part locations), so 1 is subtracted from every x, y.

The crop (as the released code's, after ACSM): the tight 0-based box grows by
5 % of its width on the left and right and 5 % of its height at the top and
bottom, its corners are rounded half away from zero, then the shorter side
grows to the longer, half on each side (rounded the same way), so the crop is a
square of `side` pixels from (x0, y0). Where it leaves the image the border
pixels are replicated. It is resized to S; keypoints and the box follow through
one `SquareFrame` (offset -x0, -y0, scale S / side). The default PCK threshold
is `img` (S).
"""

import pathlib
import warnings

import numpy as np
import scipy.io

from asic_jax.data import collection as collection_lib
from asic_jax.data import datasets
from asic_jax.data import images as images_lib
from asic_jax.data import thresholds as thresholds_lib
from asic_jax.errors import UserError

CATEGORIES = (1, 2, 3)  # class ids (001.Black_footed_Albatross ...), as the paper uses
NUM_PARTS = 15
CROP_PADDING = 0.05

_DATASET = 'CUB-200-2011'
_LAYOUT = ('images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, '
           'parts/part_locs.txt and images/')
ACSM_SPLIT = pathlib.Path('cachedir/cub/data/test_cub_cleaned.mat')


def load_cub(root: str | pathlib.Path, category: int, size: int) -> collection_lib.Collection:
  """One CUB class's test images as a collection (pairs and matches are added later).

  Args:
    root: the folder holding `CUB_200_2011/`.
    category: the class id, one of `CATEGORIES`.
    size: S, the side of the square images.

  Returns:
    A `Collection`: images `[N, S, S, 3]`; keypoints `[N, 15, 2]`, visibility
    `[N, 15]`, bboxes `[N, 4]` (the bird's tight box) and thresholds `[N]` in the
    S frame; eval_pairs = all ordered pairs.
  """
  datasets.check_category(_DATASET, category, CATEGORIES)
  base = datasets.require(pathlib.Path(root) / 'CUB_200_2011', _DATASET, _LAYOUT)
  if (base / ACSM_SPLIT).is_file():
    entries = _acsm_split(base / ACSM_SPLIT, category)
  else:
    warnings.warn(f'{base / ACSM_SPLIT} not found: using CUB\'s own test split of class '
                  f'{category}, so PCK is not comparable with the paper\'s (ACSM split)')
    entries = _cub_split(base, category)
  if len(entries) < 2:
    raise UserError(f'CUB class {category}: {len(entries)} test images, a collection needs 2')
  parts = _part_locs(base / 'parts' / 'part_locs.txt', {image_id for image_id, _, _ in entries})

  squares, names, keypoints, visibility, bboxes, frames = [], [], [], [], [], []
  for image_id, rel_path, box in entries:
    image = images_lib.read_rgb(base / 'images' / rel_path)
    x0, y0, side = crop_box(box)
    square, frame = crop_square(image, x0, y0, side, size)
    squares.append(square)
    frames.append(frame)
    names.append(pathlib.Path(rel_path).stem)
    visible = parts[image_id][:, 2] > 0
    points = frame.points(parts[image_id][:, :2] - 1.0)
    keypoints.append(np.where(visible[:, None], points, 0.0).astype(np.float32))
    visibility.append(visible)
    bboxes.append(frame.boxes(box))
  keypoints, visibility = np.stack(keypoints), np.stack(visibility)
  bboxes = np.stack(bboxes).astype(np.float32)
  lengths = thresholds_lib.thresholds('img', size, len(names))
  return collection_lib.Collection(name=f'cub_{category:03d}',
                                   images=images_lib.to_unit_range(np.stack(squares)),
                                   names=tuple(names),
                                   keypoints=keypoints,
                                   visibility=visibility,
                                   thresholds=lengths,
                                   eval_pairs=collection_lib.eval_pairs_from_keypoints(
                                       keypoints, visibility, lengths),
                                   threshold_kind='img',
                                   bboxes=bboxes,
                                   frames=tuple(frames))


def crop_box(box: np.ndarray, padding: float = CROP_PADDING) -> tuple[int, int, int]:
  """ACSM's square crop around a tight 0-based box (x1, y1, x2, y2): (x0, y0, side).

  The crop covers pixels x0 ... x0 + side - 1 and y0 ... y0 + side - 1; it may
  leave the image.
  """
  x1, y1, x2, y2 = (float(v) for v in box)
  width, height = x2 - x1 + 1, y2 - y1 + 1
  x1, x2 = _round(x1 - padding * width), _round(x2 + padding * width)
  y1, y2 = _round(y1 - padding * height), _round(y2 + padding * height)
  width, height = x2 - x1 + 1, y2 - y1 + 1
  side = max(width, height)
  return x1 - _round((side - width) / 2), y1 - _round((side - height) / 2), side


def crop_square(image: np.ndarray, x0: int, y0: int, side: int,
                size: int) -> tuple[np.ndarray, images_lib.SquareFrame]:
  """The `side`-pixel square of `[H, W, C]` from (x0, y0), border-replicated, resized to S.

  Returns:
    (`[S, S, C]` uint8, the frame mapping original pixels to it).
  """
  height, width = image.shape[:2]
  left, top = min(max(x0, 0), width), min(max(y0, 0), height)
  right, bottom = min(max(x0 + side, 0), width), min(max(y0 + side, 0), height)
  if right <= left or bottom <= top:
    raise UserError(f'CUB crop ({x0}, {y0}, side {side}) misses the {width} x {height} image')
  pad = ((top - y0, y0 + side - bottom),
         (left - x0, x0 + side - right)) + ((0, 0),) * (image.ndim - 2)
  padded = np.pad(image[top:bottom, left:right], pad, mode='edge')
  # Already square, so `square` only resizes; the crop is an offset in front of its frame.
  resized, frame = images_lib.square(padded, size)
  return resized, images_lib.SquareFrame(frame.left - x0, frame.top - y0, frame.scale, width,
                                         height)


def _round(value: float) -> int:
  """Rounds half away from zero (Python 2's round, which ACSM used)."""
  magnitude = abs(value)
  whole = np.floor(magnitude)
  return int(np.copysign(whole + (magnitude - whole >= 0.5), value))


def _acsm_split(path: pathlib.Path, category: int) -> list[tuple[int, str, np.ndarray]]:
  """(CUB image id, relative path, 0-based tight box) of the class's ACSM test images."""
  try:
    records = np.atleast_1d(scipy.io.loadmat(path, squeeze_me=True)['images'])
    entries = []
    for record in records:
      rel_path = str(record['rel_path'])
      if int(rel_path.split('.')[0]) != category:
        continue
      box = record['bbox']
      corners = np.asarray([float(box[k]) for k in ('x1', 'y1', 'x2', 'y2')]) - 1.0
      entries.append((int(record['id']), rel_path, corners))
  except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
    raise UserError(f'cannot read the ACSM split {path}: {e}') from e
  return entries


def _cub_split(base: pathlib.Path, category: int) -> list[tuple[int, str, np.ndarray]]:
  """(image id, relative path, 0-based tight box) of CUB's own test images of the class."""
  paths = _table(base / 'images.txt')
  labels = _table(base / 'image_class_labels.txt')
  training = _table(base / 'train_test_split.txt')
  boxes = _table(base / 'bounding_boxes.txt')
  entries = []
  try:
    for image_id, rel_path in paths.items():
      if int(labels[image_id]) == category and int(training[image_id]) == 0:
        x, y, w, h = (float(v) for v in boxes[image_id].split())
        entries.append((image_id, rel_path, np.asarray([x - 1, y - 1, x + w - 2, y + h - 2])))
  except (KeyError, ValueError) as e:
    raise UserError(f'CUB text files in {base} disagree or are malformed: {e!r}') from e
  return entries


def _table(path: pathlib.Path) -> dict[int, str]:
  """A CUB text file '<image id> <rest>' as {image id: rest}."""
  datasets.require(path, _DATASET, _LAYOUT)
  try:
    rows = (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())
    return {int(key): rest.strip() for key, rest in rows}
  except ValueError as e:
    raise UserError(f'cannot parse {path}: {e}') from e


def _part_locs(path: pathlib.Path, image_ids: set[int]) -> dict[int, np.ndarray]:
  """{image id: `[15, 3]` (x, y, visible), 1-based x, y} for the wanted images."""
  datasets.require(path, _DATASET, _LAYOUT)
  try:
    rows = np.loadtxt(path, ndmin=2)
    parts = {image_id: np.zeros((NUM_PARTS, 3)) for image_id in image_ids}
    for image_id, part_id, x, y, visible in rows[np.isin(rows[:, 0], list(image_ids))]:
      parts[int(image_id)][int(part_id) - 1] = (x, y, visible)
  except (ValueError, IndexError) as e:
    raise UserError(f'cannot parse {path}: {e}') from e
  return parts
