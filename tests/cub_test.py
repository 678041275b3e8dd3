"""Tests of asic_jax.data.cub on a fixture in CUB-200-2011's layout (and ACSM's .mat)."""

import pathlib
import warnings

import numpy as np
import pytest
import scipy.io
from PIL import Image

from asic_jax.data import cub
from asic_jax.data import thresholds
from asic_jax.errors import UserError
from conftest import load_config

ALBATROSS = '001.Black_footed_Albatross/Black_Footed_Albatross_'
# id: (relative path, (width, height), 1-based box x y w h, part 1 and part 3 (x, y)).
IMAGES = {
    1: (ALBATROSS + '0001.png', (40, 20), (11, 6, 20, 10), ((21, 11), (31, 16))),
    2: (ALBATROSS + '0002.jpg', (20, 40), (1, 1, 10, 30), ((5, 5), (9, 9))),
    3: (ALBATROSS + '0003.jpg', (16, 16), (1, 1, 10, 10), ((5, 5), (9, 9))),
    4: ('002.Laysan_Albatross/Laysan_Albatross_0001.jpg', (16, 16), (1, 1, 10, 10), ((5, 5), (9, 9))
       ),
}
LABELS = {1: 1, 2: 1, 3: 1, 4: 2}
TRAINING = {1: 0, 2: 0, 3: 1, 4: 0}


def _pattern(width: int, height: int) -> np.ndarray:
  y, x = np.mgrid[:height, :width]
  return np.stack([6 * x, 12 * y, np.full_like(x, 77)], -1).astype(np.uint8)


def _lines(rows) -> str:
  return ''.join(' '.join(str(v) for v in row) + '\n' for row in rows)


@pytest.fixture
def root(tmp_path) -> pathlib.Path:
  base = tmp_path / 'CUB_200_2011'
  (base / 'parts').mkdir(parents=True)
  for rel_path, (width, height), _, _ in IMAGES.values():
    (base / 'images' / rel_path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pattern(width, height)).save(base / 'images' / rel_path)
  (base / 'images.txt').write_text(_lines((i, v[0]) for i, v in IMAGES.items()))
  (base / 'image_class_labels.txt').write_text(_lines(LABELS.items()))
  (base / 'train_test_split.txt').write_text(_lines(TRAINING.items()))
  (base / 'bounding_boxes.txt').write_text(
      _lines((i, *(f'{c:.1f}' for c in v[2])) for i, v in IMAGES.items()))
  parts = []
  for i, (_, _, _, (first, third)) in IMAGES.items():
    for part in range(1, 16):
      # Invisible parts are (0, 0) as in CUB: they must not count anywhere.
      x, y, visible = (*first, 1) if part == 1 else (*third, 1) if part == 3 else (0, 0, 0)
      parts.append((i, part, f'{x:.1f}', f'{y:.1f}', visible))
  (base / 'parts' / 'part_locs.txt').write_text(_lines(parts))
  return tmp_path


def _write_acsm(root: pathlib.Path, records):
  """ACSM's test_cub_cleaned.mat: a 1 x n struct array `images` (rel_path, id, bbox, mask)."""
  boxes = np.zeros((1, len(records)), dtype=[(f, 'O') for f in ('rel_path', 'id', 'bbox', 'mask')])
  for k, (image_id, corners) in enumerate(records):
    box = np.zeros((1, 1), dtype=[(f, 'O') for f in ('x1', 'y1', 'x2', 'y2')])
    box[0, 0] = tuple(np.array([[float(c)]]) for c in corners)
    boxes[0, k] = (IMAGES[image_id][0], np.array([[image_id]]), box, np.zeros((3, 3), np.uint8))
  path = root / 'CUB_200_2011' / cub.ACSM_SPLIT
  path.parent.mkdir(parents=True)
  scipy.io.savemat(path, {'images': boxes})


def test_crop_box_rounds_half_away_from_zero():
  # Image 1's tight box (10, 5, 29, 14): 5 % of 20 and of 10 -> x 9 ... 30, y 4.5 ... 14.5
  # -> 5 ... 15 (Python 3's round would give 4 ... 14); 22 x 11 -> rows 5 - round(5.5) = -1.
  assert cub.crop_box(np.asarray([10.0, 5.0, 29.0, 14.0])) == (9, -1, 22)
  # (0, 0, 9, 29): x -0.5 ... 9.5 -> -1 ... 10, y -1.5 ... 30.5 -> -2 ... 31; 12 x 34 ->
  # columns -1 - round(11) = -12.
  assert cub.crop_box(np.asarray([0.0, 0.0, 9.0, 29.0])) == (-12, -2, 34)


def test_crop_replicates_the_border(root):
  with pytest.warns(UserWarning, match='not comparable'):
    collection = cub.load_cub(root, 1, 22)  # S = side: the resize is the identity
  rows = np.clip(np.arange(-1, 21), 0, 19)
  cols = np.clip(np.arange(9, 31), 0, 39)
  expected = _pattern(40, 20)[rows][:, cols] / 127.5 - 1
  np.testing.assert_allclose(collection.images[0], expected, atol=1e-6)


def test_cub_test_split_and_keypoints(root):
  with pytest.warns(UserWarning, match='not comparable'):
    collection = cub.load_cub(root, 1, 44)
  assert collection.names == ('Black_Footed_Albatross_0001', 'Black_Footed_Albatross_0002')
  assert collection.keypoints.shape == (2, 15, 2)
  np.testing.assert_array_equal(collection.visibility[:, :4], [[1, 0, 1, 0], [1, 0, 1, 0]])
  # Image 1: crop (9, -1, 22), scale 2. Part 1, 1-based (21, 11) -> 0-based (20, 10) ->
  # ((20 - 9 + 0.5) * 2 - 0.5, (10 + 1 + 0.5) * 2 - 0.5); part 3 (30, 15) -> (42.5, 32.5).
  np.testing.assert_allclose(collection.keypoints[0, [0, 2]], [[22.5, 22.5], [42.5, 32.5]],
                             atol=1e-5)
  # Image 2: crop (-12, -2, 34), scale 44 / 34. Part 1 (4, 4) 0-based.
  np.testing.assert_allclose(collection.keypoints[1, 0], [(4 + 12 + 0.5) * 44 / 34 - 0.5,
                                                          (4 + 2 + 0.5) * 44 / 34 - 0.5],
                             atol=1e-5)
  np.testing.assert_array_equal(collection.keypoints[:, 1], 0.0)  # invisible rows zeroed
  # The bird's tight box of image 1 (10, 5, 29, 14) in the frame.
  np.testing.assert_allclose(collection.bboxes[0], [2.5, 12.5, 40.5, 30.5], atol=1e-5)


def test_thresholds_and_eval_pairs(root):
  with pytest.warns(UserWarning):
    collection = cub.load_cub(root, 1, 44)
  assert collection.threshold_kind == 'img'
  np.testing.assert_array_equal(collection.thresholds, [44.0, 44.0])
  pairs = collection.eval_pairs
  np.testing.assert_array_equal(np.stack([pairs.src, pairs.trg], 1), [[0, 1], [1, 0]])
  np.testing.assert_array_equal(pairs.trg_points[0], collection.keypoints[1])
  kp = thresholds.with_threshold(collection, 'kp_bbox')
  # Image 1's visible parts span 10 x 5 original pixels (the (0, 0) rows do not count).
  assert kp.thresholds[0] == pytest.approx(20.0)
  box = thresholds.with_threshold(collection, 'bbox')
  assert box.thresholds[0] == pytest.approx(38.0)  # (29 - 10) * 2


def test_acsm_split_when_present(root):
  # ACSM's 1-based boxes; image 1's differs from bounding_boxes.txt, so its use shows.
  _write_acsm(root, [(2, (1, 1, 10, 30)), (1, (13, 6, 30, 15)), (4, (1, 1, 10, 10))])
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    collection = cub.load_cub(root, 1, 40)
  assert collection.names == ('Black_Footed_Albatross_0002', 'Black_Footed_Albatross_0001')
  # Box (12, 5, 29, 14) 0-based: x 11.1 ... 29.9 -> 11 ... 30, y 4.5 ... 14.5 -> 5 ... 15,
  # 20 x 11 -> crop (11, 5 - round(4.5) = 0, 20); scale 2.
  np.testing.assert_allclose(collection.keypoints[1, 0], [(20 - 11 + 0.5) * 2 - 0.5, 20.5],
                             atol=1e-5)
  np.testing.assert_allclose(collection.bboxes[1], [2.5, 10.5, 36.5, 28.5], atol=1e-5)


def test_missing_dataset_and_bad_input(root, tmp_path):
  with pytest.raises(UserError, match='CUB_200_2011.*caltech.edu/datasets/cub_200_2011') as e:
    cub.load_cub(tmp_path / 'nowhere', 1, 32)
  assert str(tmp_path / 'nowhere' / 'CUB_200_2011') in str(e.value)
  with pytest.raises(UserError, match='valid: 1, 2, 3'):
    cub.load_cub(root, 4, 32)
  with pytest.warns(UserWarning), pytest.raises(UserError, match='1 test images'):
    cub.load_cub(root, 2, 32)
  (root / 'CUB_200_2011' / 'parts' / 'part_locs.txt').unlink()
  with pytest.warns(UserWarning), pytest.raises(UserError, match='part_locs.txt'):
    cub.load_cub(root, 1, 32)


def test_config():
  config = load_config('cub', '2,released')
  assert (config.data.name, config.data.category, config.preset) == ('cub', 2, 'released')
  assert config.eval.threshold == ''
  assert load_config('cub').data.category == 1
  for bad in ('4', 'bird'):
    with pytest.raises(UserError, match='1, 2, 3'):
      load_config('cub', bad)
