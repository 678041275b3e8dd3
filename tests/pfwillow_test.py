"""Tests of asic_jax.data.pfwillow: a fixture in the real layout, and the real files."""

import pathlib

import numpy as np
import pytest
import scipy.io
from PIL import Image

from asic_jax.data import pairs as pairs_lib
from asic_jax.data import pfwillow
from asic_jax.data import thresholds
from asic_jax.errors import UserError
from conftest import load_config

S = 32


def _write(folder: pathlib.Path, stem: str, image: Image.Image, points_1based: np.ndarray):
  folder.mkdir(parents=True, exist_ok=True)
  image.save(folder / f'{stem}.png')
  scipy.io.savemat(folder / f'{stem}.mat', {'pts_coord': np.asarray(points_1based, float).T})


def _points(offset: float) -> np.ndarray:
  """Ten 1-based keypoints; the first at (11, 6) + offset, spanning 10 x 5 pixels."""
  xs = np.linspace(11, 21, 10) + offset
  ys = np.linspace(6, 11, 10)
  return np.stack([xs, ys], axis=1)


@pytest.fixture
def root(tmp_path) -> pathlib.Path:
  base = tmp_path / 'PF-dataset-WILLOW'
  # car(G): grayscale, RGBA and 16-bit files, 40 x 20 (W x H).
  _write(base / 'car(G)', 'Cars_001a', Image.new('L', (40, 20), 100), _points(0))
  _write(base / 'car(G)', 'Cars_002a', Image.new('RGBA', (40, 20), (10, 20, 30, 255)), _points(1))
  _write(base / 'car(G)', 'Cars_003a', Image.fromarray(np.full((20, 40), 32896, np.uint16)),
         _points(2))
  # The same stem in two sub-folders, as in the real car(M) and car(S); 20 x 40 images.
  for sub in ('car(M)', 'car(S)'):
    for stem in ('Cars_000a', 'Cars_004b'):
      _write(base / sub, stem, Image.new('RGB', (20, 40), (200, 0, 0)), _points(0))
  _write(base / 'duck(S)', '060_0000', Image.new('RGB', (30, 30)), _points(0))
  _write(base / 'duck(S)', '060_0001', Image.new('RGB', (30, 30)), _points(0))
  return tmp_path


def test_counts_names_and_groups(root):
  car = pfwillow.load_pfwillow(root, 'car', S)
  assert car.names == ('car(G)_Cars_001a', 'car(G)_Cars_002a', 'car(G)_Cars_003a',
                       'car(M)_Cars_000a', 'car(M)_Cars_004b', 'car(S)_Cars_000a',
                       'car(S)_Cars_004b')
  np.testing.assert_array_equal(car.groups, [0, 0, 0, 1, 1, 2, 2])
  assert car.images.shape == (7, S, S, 3) and car.keypoints.shape == (7, 10, 2)
  assert car.visibility.all() and car.bboxes is None and car.masks is None
  assert len(pfwillow.load_pfwillow(root, 'duck', S)) == 2


def test_eval_pairs_stay_within_sub_folders(root):
  car = pfwillow.load_pfwillow(root, 'car', S)
  pairs = car.eval_pairs
  # 3 x 2 ordered pairs in car(G), 2 x 1 in car(M) and in car(S).
  assert len(pairs) == 10
  np.testing.assert_array_equal(car.groups[pairs.src], car.groups[pairs.trg])
  assert np.all(pairs.src != pairs.trg)
  np.testing.assert_array_equal(pairs.src_points, car.keypoints[pairs.src])
  np.testing.assert_array_equal(pairs.trg_points, car.keypoints[pairs.trg])


def test_keypoints_follow_padding_and_resizing(root):
  car = pfwillow.load_pfwillow(root, 'car', S)
  # Cars_002a, 40 x 20: top padding 10, scale 32 / 40 = 0.8. First keypoint 1-based
  # (12, 6) -> 0-based (11, 5) -> ((11 + 0.5) * 0.8 - 0.5, (5 + 10 + 0.5) * 0.8 - 0.5).
  np.testing.assert_allclose(car.keypoints[1, 0], [8.7, 11.9], atol=1e-5)
  # Cars_000a, 20 x 40: left padding 10. 0-based (10, 5) -> ((10 + 10.5) * 0.8 - 0.5, 4.9).
  np.testing.assert_allclose(car.keypoints[3, 0], [15.9, 3.9], atol=1e-5)
  # The last keypoint is 10 x 5 pixels away from the first in every image.
  np.testing.assert_allclose(car.keypoints[:, -1] - car.keypoints[:, 0],
                             np.tile([[8.0, 4.0]], (7, 1)),
                             atol=1e-5)


def test_thresholds(root):
  car = pfwillow.load_pfwillow(root, 'car', S)
  # kp_bbox: the keypoints span 10 x 5 original pixels -> 10 * 0.8 in the frame.
  assert car.threshold_kind == 'kp_bbox'
  np.testing.assert_allclose(car.thresholds, np.full(7, 8.0), atol=1e-5)
  np.testing.assert_array_equal(car.eval_pairs.thresholds, car.thresholds[car.eval_pairs.trg])
  img = thresholds.with_threshold(car, 'img')
  np.testing.assert_array_equal(img.thresholds, np.full(7, S))
  with pytest.raises(UserError, match='boxes'):
    thresholds.with_threshold(car, 'bbox')


def test_image_modes_are_converted(root):
  car = pfwillow.load_pfwillow(root, 'car', S)
  # Uniform images stay uniform through edge-padding and resizing.
  np.testing.assert_allclose(car.images[0], 100 / 127.5 - 1, atol=1e-6)  # 8-bit gray
  np.testing.assert_allclose(car.images[1],
                             np.broadcast_to(np.asarray([10, 20, 30]) / 127.5 - 1, (S, S, 3)),
                             atol=1e-6)  # opaque RGBA
  np.testing.assert_allclose(car.images[2], 128 / 127.5 - 1, atol=1e-6)  # 16-bit 32896 -> 128


def test_missing_dataset_and_bad_input(tmp_path, root):
  with pytest.raises(UserError, match='PF-dataset-WILLOW.*proposalflow') as error:
    pfwillow.load_pfwillow(tmp_path / 'nowhere', 'car', S)
  assert str(tmp_path / 'nowhere' / 'PF-dataset-WILLOW') in str(error.value)
  with pytest.raises(UserError, match=r'motorbike\(G\)'):
    pfwillow.load_pfwillow(root, 'motorbike', S)
  with pytest.raises(UserError, match='valid: car, duck, motorbike, winebottle'):
    pfwillow.load_pfwillow(root, 'bus', S)
  (root / 'PF-dataset-WILLOW' / 'duck(S)' / '060_0001.mat').unlink()
  with pytest.raises(UserError, match='060_0001.mat'):
    pfwillow.load_pfwillow(root, 'duck', S)


def test_config():
  config = load_config('pfwillow', 'duck,released')
  assert (config.data.name, config.data.category, config.preset) == ('pfwillow', 'duck', 'released')
  assert config.eval.threshold == ''
  assert load_config('pfwillow').data.category == 'car'
  with pytest.raises(UserError, match='winebottle'):
    load_config('pfwillow', 'bottle')


def test_real_pfwillow(data_dir):
  counts = {}
  total_pairs = 0
  for category in pfwillow.CATEGORIES:
    collection = pfwillow.load_pfwillow(data_dir, category, S)
    counts[category] = len(collection)
    # 10 files of car, motorbike and winebottle sit in both their (M) and (S) sub-folders:
    # evaluation keeps both (as the protocol's pairs do); training never pairs them.
    same = pairs_lib.identical_images(collection.images)
    assert np.triu(same).sum() == (0 if category == 'duck' else 10)
    assert collection.keypoints.shape == (len(collection), 10, 2)
    assert collection.visibility.all()
    # Every keypoint lies inside its square (PF-WILLOW annotates only visible points).
    assert np.all((collection.keypoints > -0.5) & (collection.keypoints < S - 0.5))
    pairs = collection.eval_pairs
    np.testing.assert_array_equal(collection.groups[pairs.src], collection.groups[pairs.trg])
    assert np.all(pairs.thresholds > 0)
    total_pairs += len(pairs)
  assert counts == {'car': 30, 'duck': 10, 'motorbike': 30, 'winebottle': 30}
  assert sum(counts.values()) == 100
  assert total_pairs == 900
