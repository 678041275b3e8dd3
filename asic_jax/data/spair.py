"""SPair-71k: one category's test images, keypoints, boxes and official test pairs.

Layout under `root`:

  SPair-71k/JPEGImages/<category>/<stem>.jpg
  SPair-71k/ImageAnnotation/<category>/<stem>.json
  SPair-71k/PairAnnotation/test/<pair id>-<src stem>-<trg stem>:<category>.json

Fields read (the layout of the released `datasets/spair.py` and public loaders):

* pair files: `category`, `src_imname`, `trg_imname` (file names in
  JPEGImages/<category>), `kps_ids` (keypoint ids), `src_kps`, `trg_kps` (one
  [x, y] per id, in the same order) and `mirror` (must be 0, as the released
  code asserts: we make no flipped copies);
* image files: `kps` (a dict keypoint id -> [x, y], or null where the keypoint
  is not annotated) and `bndbox` ([x1, y1, x2, y2]).

Coordinates are 0-based pixels of the original image, as every SPair loader
reads them. The collection is every image in the category's test pairs, sorted
by name; K = the number of keypoint ids of the category. Each evaluation pair is
scored on the keypoints its own pair file lists (DESIGN §8.4), with the
target's threshold: by default the max side of its box (`bbox`); 'kp_bbox'
uses the image's own annotated keypoints (ImageAnnotation), not the pair's subset.
"""

import json
import pathlib

import numpy as np

from asic_jax.data import collection as collection_lib
from asic_jax.data import datasets
from asic_jax.data import images as images_lib
from asic_jax.data import thresholds as thresholds_lib
from asic_jax.errors import UserError

CATEGORIES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
              'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'train', 'tvmonitor')

_DATASET = 'SPair-71k'
_LAYOUT = ('JPEGImages/<category>/*.jpg, ImageAnnotation/<category>/*.json and '
           'PairAnnotation/test/*.json')


def load_spair(root: str | pathlib.Path, category: str, size: int) -> collection_lib.Collection:
  """One SPair-71k category as a collection (pairs and matches are added later).

  Args:
    root: the folder holding `SPair-71k/`.
    category: one of `CATEGORIES`.
    size: S, the side of the square images.

  Returns:
    A `Collection`: images `[N, S, S, 3]`; keypoints `[N, K, 2]`, visibility
    `[N, K]`, bboxes `[N, 4]` and thresholds `[N]` in the S frame; eval_pairs =
    the category's test pairs.
  """
  datasets.check_category(_DATASET, category, CATEGORIES)
  base = pathlib.Path(root) / _DATASET
  datasets.require(base, _DATASET, _LAYOUT)
  image_dir = datasets.require(base / 'JPEGImages' / category, _DATASET, _LAYOUT)
  annotation_dir = datasets.require(base / 'ImageAnnotation' / category, _DATASET, _LAYOUT)
  pair_dir = datasets.require(base / 'PairAnnotation' / 'test', _DATASET, _LAYOUT)

  pairs = [(path, _read_json(path)) for path in sorted(pair_dir.glob(f'*{category}.json'))]
  pairs = [(path, pair) for path, pair in pairs if pair.get('category') == category]
  if not pairs:
    raise datasets.missing_dataset(_DATASET, pair_dir, f'test pair files of {category}')
  files = {}
  for path, pair in pairs:
    if pair.get('mirror', 0):
      raise UserError(f'{path}: mirrored pairs are not supported (mirror={pair["mirror"]})')
    for key in ('src_imname', 'trg_imname'):
      files[pathlib.Path(pair[key]).stem] = pair[key]
  names = sorted(files)
  index = {name: i for i, name in enumerate(names)}

  annotations = [_read_json(annotation_dir / f'{name}.json') for name in names]
  num_kps = 1 + max(int(k) for ann in annotations for k in ann['kps'])
  squares, frames, keypoints, visibility, bboxes = [], [], [], [], []
  for name, ann in zip(names, annotations):
    image, frame = images_lib.square(images_lib.read_rgb(image_dir / files[name]), size)
    squares.append(image)
    frames.append(frame)
    ids = [k for k, xy in ann['kps'].items() if xy is not None]
    xy = [ann['kps'][k] for k in ids]
    points, visible = _scatter(frame, ids, xy, num_kps, annotation_dir / f'{name}.json')
    keypoints.append(points)
    visibility.append(visible)
    bboxes.append(frame.boxes(ann['bndbox']))
  keypoints, visibility = np.stack(keypoints), np.stack(visibility)
  bboxes = np.stack(bboxes).astype(np.float32)
  lengths = thresholds_lib.thresholds('bbox', size, len(names), bboxes=bboxes)

  src, trg, src_points, trg_points, visible = [], [], [], [], []
  for path, pair in pairs:
    s = index[pathlib.Path(pair['src_imname']).stem]
    t = index[pathlib.Path(pair['trg_imname']).stem]
    ids = pair['kps_ids']
    if not len(ids) == len(pair['src_kps']) == len(pair['trg_kps']):
      raise UserError(f'{path}: kps_ids, src_kps and trg_kps differ in length')
    points_s, visible_s = _scatter(frames[s], ids, pair['src_kps'], num_kps, path)
    points_t, visible_t = _scatter(frames[t], ids, pair['trg_kps'], num_kps, path)
    src.append(s)
    trg.append(t)
    src_points.append(points_s)
    trg_points.append(points_t)
    visible.append(visible_s & visible_t)
  src, trg = np.asarray(src, np.int32), np.asarray(trg, np.int32)
  eval_pairs = collection_lib.EvalPairs(src=src,
                                        trg=trg,
                                        src_points=np.stack(src_points),
                                        trg_points=np.stack(trg_points),
                                        visible=np.stack(visible),
                                        thresholds=lengths[trg])
  return collection_lib.Collection(name=f'spair_{category}',
                                   images=images_lib.to_unit_range(np.stack(squares)),
                                   names=tuple(names),
                                   keypoints=keypoints,
                                   visibility=visibility,
                                   thresholds=lengths,
                                   eval_pairs=eval_pairs,
                                   threshold_kind='bbox',
                                   bboxes=bboxes,
                                   frames=tuple(frames))


def _scatter(frame: images_lib.SquareFrame, ids, xy, num_kps: int, source: pathlib.Path):
  """Keypoints given by id -> (`[K, 2]` float32 S frame, invisible rows zero; `[K]` bool)."""
  points = np.zeros((num_kps, 2), np.float32)
  visible = np.zeros(num_kps, bool)
  for kp_id, point in zip(ids, xy):
    kp_id = int(kp_id)
    if not 0 <= kp_id < num_kps:
      raise UserError(f'{source}: keypoint id {kp_id} outside the category\'s 0 ... '
                      f'{num_kps - 1}')
    if point is not None:
      points[kp_id] = frame.points(np.asarray(point[:2], np.float64))
      visible[kp_id] = True
  return points, visible


def _read_json(path: pathlib.Path) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError as e:
    raise datasets.missing_dataset(_DATASET, path, 'the annotation of an image of the '
                                   'test pairs') from e
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f'cannot read SPair annotation {path}: {e}') from e
