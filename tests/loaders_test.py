"""Tests of asic_jax.data.loaders: the dataset a config names, scored with `eval.threshold`
once; photos that train poorly and keypoints that cannot count are named."""

import json

import numpy as np
import pytest
from PIL import Image

from asic_jax.data import loaders
from asic_jax.errors import UserError
from conftest import load_config, two_image_collection


def _photos(path, sizes=((40, 20), (30, 30), (20, 50))):
  for i, (w, h) in enumerate(sizes):
    Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(path / f'p{i}.png')


def _folder_config(tmp_path, size=32):
  return load_config('folder', **{'data.path': str(tmp_path), 'data.img_size': size})


def test_a_visible_nan_keypoint_is_an_error_naming_it(tmp_path):
  _photos(tmp_path)
  (tmp_path / 'keypoints.json'
  ).write_text('{"p0.png": [[10, 5, 1], [NaN, 3, 1]], "p1.png": [[1, 1, 1], [2, 2, 1]]}')
  with pytest.raises(UserError, match=r'keypoint 1 of image p0 is \[nan, .*\] but marked visible'):
    loaders.load_collection(_folder_config(tmp_path))


def test_keypoints_outside_the_photo_are_warned_about_and_not_counted(tmp_path):
  _photos(tmp_path)  # p0 is 40 x 20: y = 25 is below it, though inside its padded square
  (tmp_path / 'keypoints.json').write_text(
      json.dumps({
          'p0.png': [[10, 5, 1], [10, 25, 1]],
          'p1.png': [[1, 1, 1], [2, 2, 1]],
          'p2.png': [[3, 3, 1], [4, 4, 1]]
      }))
  with pytest.warns(UserWarning, match='lie outside their photo .*keypoint 1 of p0.*not counted'):
    collection = loaders.load_collection(_folder_config(tmp_path))
  np.testing.assert_array_equal(collection.visibility, [[1, 0], [1, 1], [1, 1]])
  assert not collection.eval_pairs.visible[collection.eval_pairs.src == 0, 1].any()
  assert collection.eval_pairs.visible.sum() == 6 * 2 - 4  # the pairs with p0 lose keypoint 1


def test_tiny_and_elongated_photos_are_warned_about(tmp_path):
  _photos(tmp_path, sizes=((1, 1), (200, 20), (40, 40)))
  with pytest.warns(UserWarning,
                    match=r'2 image\(s\) smaller than 32 px or more than 4:1.*'
                    r'p0 \(1 x 1\), p1 \(200 x 20\)'):
    loaders.load_collection(_folder_config(tmp_path))


def test_an_unknown_dataset_lists_the_known_ones(tmp_path):
  with pytest.raises(UserError, match=r"data.name must be one of \('synthetic', 'folder', 'spair'"):
    loaders.load_collection(load_config('tiny', **{'data.name': 'imagenet'}))


def _boxed(root, category, size):
  """A benchmark loader's stand-in, scored by its dataset's own PCK length ('bbox')."""
  return two_image_collection(size, 'bbox', name=f'{root}:{category}:{size}', masks=True)


@pytest.mark.parametrize('threshold, lengths', [('', [10.0, 4.0]), ('img', [16.0, 16.0]),
                                                ('kp_bbox', [6.0, 3.0])])
def test_a_benchmark_is_loaded_by_root_category_and_size_and_scored_once(
    monkeypatch, threshold, lengths):
  monkeypatch.setitem(loaders.BENCHMARKS, 'spair', _boxed)
  config = load_config('spair', 'dog', **{'data.root': '/r', 'data.img_size': 16})
  config.eval.threshold = threshold
  collection = loaders.load_collection(config)
  assert collection.name == '/r:dog:16'
  assert collection.threshold_kind == (threshold or 'bbox')
  np.testing.assert_allclose(collection.thresholds, lengths)
  np.testing.assert_allclose(collection.eval_pairs.thresholds, np.asarray(lengths)[[1, 0]])
  assert collection.masks_from == 'dataset'


def test_the_synthetic_collection_is_made_once_per_setting():
  config = load_config('tiny')
  first = loaders.load_collection(config)
  assert loaders.load_collection(config).images is first.images
  assert first.masks_from == 'dataset' and first.pairs is not None
  config.seed = 1
  assert not np.array_equal(loaders.load_collection(config).images, first.images)
