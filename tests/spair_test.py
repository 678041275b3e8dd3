"""Tests of asic_jax.data.spair on a fixture in SPair-71k's JSON layout."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from asic_jax.data import spair
from asic_jax.data import thresholds
from asic_jax.errors import UserError
from conftest import load_config

S = 32
# Image a is 40 x 20 (W x H): top padding 10, scale 0.8. b is 20 x 40: left padding 10,
# scale 0.8. c is 16 x 16: no padding, scale 2.
SIZES = {'a': (40, 20), 'b': (20, 40), 'c': (16, 16)}
KPS = {
    'a': {
        '0': [10, 5],
        '1': [20, 10],
        '2': None,
        '3': [30, 15],
        '4': None
    },
    'b': {
        '0': [5, 30],
        '1': [10, 20],
        '2': [15, 10],
        '3': [2, 2],
        '4': None
    },
    'c': {
        '0': None,
        '1': [4, 4],
        '2': [8, 8],
        '3': [12, 6],
        '4': [1, 1]
    },
}
BOXES = {'a': [5, 2, 35, 18], 'b': [1, 1, 19, 39], 'c': [0, 0, 15, 15]}


def _json(path: pathlib.Path, value: dict):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(value))


def _pair(root: pathlib.Path,
          split: str,
          pair_id: int,
          src: str,
          trg: str,
          ids,
          category='cat',
          src_kps=None):
  _json(
      root / 'PairAnnotation' / split / f'{pair_id:06d}-{src}-{trg}:{category}.json',
      dict(pair_id=pair_id,
           category=category,
           src_imname=f'{src}.jpg',
           trg_imname=f'{trg}.jpg',
           src_imsize=[*SIZES[src], 3],
           trg_imsize=[*SIZES[trg], 3],
           src_bndbox=BOXES[src],
           trg_bndbox=BOXES[trg],
           kps_ids=ids,
           src_kps=src_kps or [KPS[src][str(i)] for i in ids],
           trg_kps=[KPS[trg][str(i)] for i in ids],
           mirror=0))


@pytest.fixture
def root(tmp_path) -> pathlib.Path:
  base = tmp_path / 'SPair-71k'
  for name, (width, height) in SIZES.items():
    (base / 'JPEGImages' / 'cat').mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (width, height),
              (0, 128, 255)).save(base / 'JPEGImages' / 'cat' / f'{name}.jpg')
    _json(
        base / 'ImageAnnotation' / 'cat' / f'{name}.json',
        dict(filename=f'{name}.jpg',
             category='cat',
             image_width=width,
             image_height=height,
             bndbox=BOXES[name],
             kps=KPS[name]))
  # Two test pairs share image a with different keypoint subsets; ids may be strings. The
  # second lists a's keypoint 3 slightly off its image annotation, to show whose is used.
  _pair(base, 'test', 1, 'a', 'b', [0, 1])
  _pair(base, 'test', 2, 'a', 'c', ['3'], src_kps=[[31, 15]])
  _pair(base, 'test', 3, 'c', 'b', [1, 2, 3])
  _pair(base, 'trn', 4, 'a', 'c', [1])  # not a test pair
  return tmp_path


def test_collection_is_the_test_pairs_images(root):
  cat = spair.load_spair(root, 'cat', S)
  assert cat.names == ('a', 'b', 'c')
  assert cat.images.shape == (3, S, S, 3)
  assert cat.keypoints.shape == (3, 5, 2) and cat.visibility.shape == (3, 5)
  np.testing.assert_allclose(cat.images[0, 0, 0],
                             np.asarray([0, 128, 255]) / 127.5 - 1,
                             atol=3 / 127.5)  # JPEG


def test_keypoints_and_boxes_in_the_frame(root):
  cat = spair.load_spair(root, 'cat', S)
  np.testing.assert_array_equal(cat.visibility[0], [True, True, False, True, False])
  # a: (10, 5) -> ((10 + 0.5) * 0.8 - 0.5, (5 + 10 + 0.5) * 0.8 - 0.5) = (7.9, 11.9).
  np.testing.assert_allclose(cat.keypoints[0, 0], [7.9, 11.9], atol=1e-5)
  # b: (5, 30) -> ((5 + 10 + 0.5) * 0.8 - 0.5, (30 + 0.5) * 0.8 - 0.5) = (11.9, 23.9).
  np.testing.assert_allclose(cat.keypoints[1, 0], [11.9, 23.9], atol=1e-5)
  # c: (4, 4) -> (4.5 * 2 - 0.5, ...) = (8.5, 8.5).
  np.testing.assert_allclose(cat.keypoints[2, 1], [8.5, 8.5], atol=1e-5)
  np.testing.assert_array_equal(cat.keypoints[0, [2, 4]], 0.0)  # invisible rows zeroed
  # a's box [5, 2, 35, 18] -> [5.5*.8-.5, 12.5*.8-.5, 35.5*.8-.5, 28.5*.8-.5].
  np.testing.assert_allclose(cat.bboxes[0], [3.9, 9.5, 27.9, 22.3], atol=1e-5)


def test_bbox_thresholds_by_default(root):
  cat = spair.load_spair(root, 'cat', S)
  assert cat.threshold_kind == 'bbox'
  # Max box sides: a 30 * 0.8, b 38 * 0.8, c 15 * 2.
  np.testing.assert_allclose(cat.thresholds, [24.0, 30.4, 30.0], atol=1e-5)


def test_other_thresholds(root):
  cat = spair.load_spair(root, 'cat', S)
  kp = thresholds.with_threshold(cat, 'kp_bbox')
  # a's annotated keypoints span x 10 ... 30, y 5 ... 15 (nulls ignored) -> 20 * 0.8;
  # b's x 2 ... 15, y 2 ... 30 -> 28 * 0.8; c's x 1 ... 12, y 1 ... 8 -> 11 * 2.
  np.testing.assert_allclose(kp.thresholds, [16.0, 22.4, 22.0], atol=1e-5)
  np.testing.assert_allclose(kp.eval_pairs.thresholds, kp.thresholds[cat.eval_pairs.trg])
  img = thresholds.with_threshold(cat, 'img')
  np.testing.assert_array_equal(img.thresholds, [S, S, S])
  assert img.threshold_kind == 'img' and kp.threshold_kind == 'kp_bbox'


def test_eval_pairs_carry_their_own_keypoints(root):
  cat = spair.load_spair(root, 'cat', S)
  pairs = cat.eval_pairs
  np.testing.assert_array_equal(pairs.src, [0, 0, 2])
  np.testing.assert_array_equal(pairs.trg, [1, 2, 1])
  np.testing.assert_array_equal(pairs.visible, [[1, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 1, 1, 1, 0]])
  np.testing.assert_array_equal(pairs.src_points[0, :2], cat.keypoints[0, :2])
  np.testing.assert_array_equal(pairs.src_points[0, 2:], 0.0)
  # Pair 2 lists a's keypoint 3 at (31, 15): ((31 + 0.5) * 0.8 - 0.5, 15.5 * 0.8 - 0.5).
  np.testing.assert_allclose(pairs.src_points[1, 3], [24.7, 19.9], atol=1e-5)
  np.testing.assert_array_equal(pairs.src_points[1, :3], 0.0)
  # c's keypoint 3 (12, 6) -> (24.5, 12.5) as the target of pair 2.
  np.testing.assert_allclose(pairs.trg_points[1, 3], [24.5, 12.5], atol=1e-5)
  np.testing.assert_array_equal(pairs.thresholds, cat.thresholds[[1, 2, 1]])


def test_missing_dataset_and_bad_input(root, tmp_path):
  with pytest.raises(UserError, match='SPair-71k.*cvlab.postech.ac.kr') as error:
    spair.load_spair(tmp_path / 'nowhere', 'cat', S)
  assert str(tmp_path / 'nowhere' / 'SPair-71k') in str(error.value)
  with pytest.raises(UserError, match='valid: aeroplane, bicycle'):
    spair.load_spair(root, 'unicorn', S)
  with pytest.raises(UserError, match=r'SPair-71k/JPEGImages/horse holding'):
    spair.load_spair(root, 'horse', S)
  for folder in ('JPEGImages', 'ImageAnnotation'):
    (root / 'SPair-71k' / folder / 'horse').mkdir()
  with pytest.raises(UserError, match=r'PairAnnotation/test holding test pair files of horse'):
    spair.load_spair(root, 'horse', S)
  (root / 'SPair-71k' / 'ImageAnnotation' / 'cat' / 'c.json').unlink()
  with pytest.raises(UserError, match='c.json'):
    spair.load_spair(root, 'cat', S)


def test_config():
  config = load_config('spair', 'dog,released')
  assert (config.data.name, config.data.category, config.preset) == ('spair', 'dog', 'released')
  assert config.eval.threshold == ''
  assert load_config('spair').data.category == 'cat'
  with pytest.raises(UserError, match='tvmonitor'):
    load_config('spair', 'unicorn')
