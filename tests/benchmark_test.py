"""Tests of asic_jax.data.benchmark: thresholds of each kind, errors, boxes into the frame."""

import numpy as np
import pytest

from asic_jax.data import benchmark
from asic_jax.data import images
from asic_jax.errors import UserError


def test_img_threshold_is_the_side():
  np.testing.assert_array_equal(benchmark.thresholds('img', 32, 3), [32.0, 32.0, 32.0])


def test_bbox_threshold_is_the_max_side_of_the_box():
  boxes = np.asarray([[1.0, 2.0, 11.0, 7.0], [0.0, 0.0, 3.0, 9.5]])
  # Widths 10 and 3, heights 5 and 9.5.
  np.testing.assert_allclose(benchmark.thresholds('bbox', 32, 2, bboxes=boxes), [10.0, 9.5])


def test_kp_bbox_threshold_ignores_invisible_rows():
  keypoints = np.asarray([
      [[2.0, 3.0], [8.0, 5.0], [100.0, -50.0]],  # the far row is invisible
      [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],  # nothing annotated (padding)
      [[5.0, 5.0], [0.0, 0.0], [0.0, 0.0]],  # one keypoint: a box of side 0
      [[0.0, 0.0], [4.0, 10.0], [0.0, 0.0]],  # (0, 0) is a real, visible keypoint
  ])
  visibility = np.asarray([[1, 1, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0]], bool)
  # Image 0: x spans 2 ... 8 (6), y spans 3 ... 5 (2) -> 6. Image 3: max(4, 10) = 10.
  lengths = benchmark.thresholds('kp_bbox', 32, 4, keypoints=keypoints, visibility=visibility)
  np.testing.assert_allclose(lengths, [6.0, 0.0, 0.0, 10.0])
  assert lengths.dtype == np.float32


def test_threshold_needs_its_annotation():
  with pytest.raises(UserError, match='boxes'):
    benchmark.thresholds('bbox', 32, 2)
  with pytest.raises(UserError, match='keypoints'):
    benchmark.thresholds('kp_bbox', 32, 2)


@pytest.mark.parametrize('given, kind', [(None, 'bbox'), ('', 'bbox'), ('img', 'img'),
                                         ('kp_bbox', 'kp_bbox')])
def test_threshold_kind(given, kind):
  assert benchmark.threshold_kind(given, 'bbox') == kind


def test_unknown_threshold_kind():
  with pytest.raises(UserError, match="one of.*'kp_bbox'.*got 'box'"):
    benchmark.threshold_kind('box', 'img')


def test_missing_dataset_message(tmp_path):
  error = benchmark.missing_dataset('PF-WILLOW', tmp_path / 'PF-dataset-WILLOW', 'car(G)/*.png')
  message = str(error)
  assert '\n' not in message
  assert str(tmp_path / 'PF-dataset-WILLOW') in message
  assert 'car(G)/*.png' in message
  assert 'https://www.di.ens.fr/willow/research/proposalflow/' in message


def test_unknown_category_lists_the_valid_ones():
  with pytest.raises(UserError, match="no category 'cow'; valid: cat, dog"):
    benchmark.check_category('SPair-71k', 'cow', ('cat', 'dog'))


def test_boxes_to_frame():
  # A 40 x 20 image in a 32 frame: top padding 10, scale 0.8.
  frame = images.SquareFrame(left=0, top=10, scale=0.8)
  box = benchmark.boxes_to_frame(frame, [0.0, 0.0, 39.0, 19.0])
  # (p + pad + 0.5) * 0.8 - 0.5: x1 0.5*.8-.5, y1 10.5*.8-.5, x2 39.5*.8-.5, y2 29.5*.8-.5.
  np.testing.assert_allclose(box, [-0.1, 7.9, 31.1, 23.1], atol=1e-6)
