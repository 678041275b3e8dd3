"""Tests of asic_jax.data.thresholds: the PCK length of each kind, and switching a collection's
kind once (`with_threshold`)."""

import numpy as np
import pytest

from asic_jax.data import thresholds
from asic_jax.errors import UserError
from conftest import two_image_collection


def test_img_threshold_is_the_side():
  np.testing.assert_array_equal(thresholds.thresholds('img', 32, 3), [32.0, 32.0, 32.0])


def test_bbox_threshold_is_the_max_side_of_the_box():
  boxes = np.asarray([[1.0, 2.0, 11.0, 7.0], [0.0, 0.0, 3.0, 9.5]])
  # Widths 10 and 3, heights 5 and 9.5.
  np.testing.assert_allclose(thresholds.thresholds('bbox', 32, 2, bboxes=boxes), [10.0, 9.5])


def test_kp_bbox_threshold_ignores_invisible_rows():
  keypoints = np.asarray([
      [[2.0, 3.0], [8.0, 5.0], [100.0, -50.0]],  # the far row is invisible
      [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],  # nothing annotated (padding)
      [[5.0, 5.0], [0.0, 0.0], [0.0, 0.0]],  # one keypoint: a box of side 0
      [[0.0, 0.0], [4.0, 10.0], [0.0, 0.0]],  # (0, 0) is a real, visible keypoint
  ])
  visibility = np.asarray([[1, 1, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0]], bool)
  # Image 0: x spans 2 ... 8 (6), y spans 3 ... 5 (2) -> 6. Image 3: max(4, 10) = 10.
  lengths = thresholds.thresholds('kp_bbox', 32, 4, keypoints=keypoints, visibility=visibility)
  np.testing.assert_allclose(lengths, [6.0, 0.0, 0.0, 10.0])
  assert lengths.dtype == np.float32


def test_threshold_needs_its_annotation():
  with pytest.raises(UserError, match='boxes'):
    thresholds.thresholds('bbox', 32, 2)
  with pytest.raises(UserError, match='keypoints'):
    thresholds.thresholds('kp_bbox', 32, 2)


@pytest.mark.parametrize('given, kind', [(None, 'bbox'), ('', 'bbox'), ('img', 'img'),
                                         ('kp_bbox', 'kp_bbox')])
def test_threshold_kind(given, kind):
  assert thresholds.threshold_kind(given, 'bbox') == kind


def test_unknown_threshold_kind():
  with pytest.raises(UserError, match="one of.*'kp_bbox'.*got 'box'"):
    thresholds.threshold_kind('box', 'img')


@pytest.mark.parametrize('kind, lengths', [('bbox', [10.0, 4.0]), ('kp_bbox', [6.0, 3.0])])
def test_with_threshold_recomputes_images_and_pairs(kind, lengths):
  switched = thresholds.with_threshold(two_image_collection(), kind)
  assert switched.threshold_kind == kind
  np.testing.assert_allclose(switched.thresholds, lengths)
  # Pairs (0, 1) and (1, 0): each takes its target's length.
  np.testing.assert_allclose(switched.eval_pairs.thresholds, lengths[::-1])


@pytest.mark.parametrize('threshold', [None, '', 'img'])
def test_with_threshold_keeps_the_collection_when_unchanged(threshold):
  collection = two_image_collection()
  assert thresholds.with_threshold(collection, threshold) is collection


def test_with_threshold_rejects_an_unknown_kind():
  with pytest.raises(UserError, match="got 'box'"):
    thresholds.with_threshold(two_image_collection(), 'box')
