"""The `Collection` record: its checks, its pair list and its helpers."""

import numpy as np
import pytest

from asic_jax.data import collection as collection_lib
from asic_jax.data import images


def test_thresholds_belong_to_the_target():
  keypoints = np.zeros((3, 2, 2), np.float32)
  pairs = collection_lib.eval_pairs_from_keypoints(keypoints, np.ones((3, 2), bool),
                                                   np.asarray([10.0, 20.0, 30.0]))
  assert np.all(pairs.thresholds == np.asarray([10.0, 20.0, 30.0])[pairs.trg])
  assert np.all(pairs.src != pairs.trg) and len(pairs) == 6


def test_pairs_stay_within_groups_and_carry_each_ends_keypoints():
  keypoints = np.arange(4 * 2 * 2, dtype=np.float32).reshape(4, 2, 2)
  visibility = np.asarray([[1, 1], [1, 0], [0, 1], [1, 1]], bool)
  pairs = collection_lib.eval_pairs_from_keypoints(keypoints, visibility, np.ones(4),
                                                   np.asarray([0, 0, 1, 1]))
  assert sorted(zip(pairs.src.tolist(), pairs.trg.tolist())) == [(0, 1), (1, 0), (2, 3), (3, 2)]
  for e in range(len(pairs)):
    s, t = pairs.src[e], pairs.trg[e]
    np.testing.assert_array_equal(pairs.src_points[e], keypoints[s])
    np.testing.assert_array_equal(pairs.trg_points[e], keypoints[t])
    np.testing.assert_array_equal(pairs.visible[e], visibility[s] & visibility[t])


def _images(n=3, size=8):
  return np.zeros((n, size, size, 3), np.float32)


@pytest.mark.parametrize('changes, message', [
    (dict(images=np.zeros((3, 8, 6, 3), np.float32)), r'images must be \[N, S, S, 3\]'),
    (dict(images=_images(1), names=('a',)), 'at least two images, got 1'),
    (dict(names=('a', 'b')), '2 names for 3 images'),
    (dict(names=('a', 'a', 'b')), 'not unique'),
    (dict(masks=np.zeros((3, 4, 4))), r'masks must be \(3, 8, 8\)'),
    (dict(pairs=np.asarray([[0, 1]])), 'pairs and matches come together'),
    (dict(pairs=np.asarray([[0, 0]]), matches=np.zeros((1, 2, 5))), 'an image with itself'),
    (dict(pairs=np.asarray([[0, 1]]), matches=np.zeros((1, 2, 4))), r'matches must be \[P, M, 5\]'),
    (dict(keypoints=np.zeros((3, 1, 2))), 'keypoints and visibility come together'),
    (dict(flipped=np.zeros(2, bool)), r'flipped must be \[3\]'),
    (dict(frames=(None,)), '1 frames for 3 images'),
])
def test_a_malformed_collection_is_refused(changes, message):
  fields = dict(name='c', images=_images(), names=('a', 'b', 'c'))
  with pytest.raises(ValueError, match=message):
    collection_lib.Collection(**{**fields, **changes})


def test_masks_and_photo_areas():
  collection = collection_lib.Collection(name='c',
                                         images=_images(2, 4),
                                         names=('a', 'b'),
                                         frames=(images.SquareFrame(0, 1, 1.0, 4, 2), None))
  assert collection.size == 4 and len(collection) == 2
  np.testing.assert_array_equal(collection.masks_or_ones(), np.ones((2, 4, 4)))
  areas = collection.photo_areas()
  # A 4 x 2 photo padded by one row above and below: rows 1 and 2 show it.
  np.testing.assert_array_equal(areas[0].any(1), [False, True, True, False])
  np.testing.assert_array_equal(areas[1], np.ones((4, 4)))  # no frame: all photo


@pytest.mark.parametrize('token, index', [('b', 1), (2, 2), (' 2 ', 2), (-1, 2), ('-3', 0),
                                          (3, None), ('x', None), (True, None)])
def test_find_image_by_name_then_index(token, index):
  assert collection_lib.find_image(token, ('a', 'b', 'c')) == index


def test_a_name_that_looks_like_an_index_is_found_by_name():
  assert collection_lib.find_image('1', ('5', '0', '1')) == 2  # by index it would be 1
  assert collection_lib.find_image(0, ('5', '0', '1')) == 0  # an int is an index
