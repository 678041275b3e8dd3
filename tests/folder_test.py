"""A folder with a keypoint JSON: keypoints in the S frame, PCK pairs, threshold switches."""

import json

import numpy as np
import pytest
from PIL import Image

from asic_jax.data import folder, images, thresholds
from asic_jax.errors import UserError


def _photos(path, sizes=((40, 20), (30, 30), (20, 50))):
  for i, (w, h) in enumerate(sizes):
    Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(path / f'p{i}.png')


def test_keypoint_json_lands_in_the_square_frame(tmp_path):
  _photos(tmp_path)
  (tmp_path / 'keypoints.json').write_text(
      json.dumps({
          'p0.png': [[10, 5, 1], [39, 19, 1]],
          'p1': [[0, 0, 1], [29, 29, 0]],  # by stem too; the second keypoint not visible
      }))  # p2 is not annotated: nothing visible
  collection = folder.load_folder(tmp_path, 32)
  # p0 is 40 x 20: padded by 10 rows on top to 40 x 40, scale 32 / 40 = 0.8; a pixel centre
  # p lands at (p + pad + 0.5) * 0.8 - 0.5.
  np.testing.assert_allclose(collection.keypoints[0], [[7.9, 11.9], [31.1, 23.1]], atol=1e-5)
  np.testing.assert_allclose(collection.keypoints[1, 0], [0.5 * 32 / 30 - 0.5] * 2, atol=1e-5)
  np.testing.assert_array_equal(collection.visibility, [[1, 1], [1, 0], [0, 0]])
  assert collection.threshold_kind == 'img' and np.all(collection.thresholds == 32)
  pairs = collection.eval_pairs
  assert len(pairs) == 6
  visible = {(int(a), int(b)): list(v) for a, b, v in zip(pairs.src, pairs.trg, pairs.visible)}
  assert visible[0, 1] == visible[1, 0] == [True, False]  # both ends annotated
  assert visible[0, 2] == visible[2, 1] == [False, False]
  # The keypoints' own box, from the target's visible keypoints only.
  switched = thresholds.with_threshold(collection, 'kp_bbox')
  np.testing.assert_allclose(switched.thresholds, [max(31.1 - 7.9, 23.1 - 11.9), 0, 0], atol=1e-5)
  np.testing.assert_allclose(switched.eval_pairs.thresholds,
                             switched.thresholds[switched.eval_pairs.trg])
  with pytest.raises(UserError, match='needs object boxes'):
    thresholds.with_threshold(collection, 'bbox')


@pytest.mark.parametrize('content,message', [
    ({
        'nope.png': [[1, 1, 1]]
    }, "no image 'nope.png'"),
    ({
        'p0.png': [[1, 1, 1]],
        'p1.png': [[1, 1, 1], [2, 2, 1]]
    }, 'same number of keypoints'),
    ({
        'p0.png': [[1, 1]]
    }, r'\[x, y, visible\] triples'),
    ({
        'p0.png': [['10', '5', 1]]
    }, r"keypoints.json: p0.png: expected numbers, got '10' \(str\)"),
    ({
        'p0.png': [[10, 5, 1], [None, 5, 1]],
        'p1.png': [[1, 1, 1], [2, 2, 1]]
    }, r'keypoints.json: p0.png: expected numbers, got None \(NoneType\)'),
    ({
        'p0.png': [[10, 5, 1], [10, 5]],
        'p1.png': [[1, 1, 1], [2, 2, 1]]
    }, 'keypoints.json: p0.png: expected rows of numbers of one length'),
])
def test_bad_keypoint_json_is_a_clear_error(tmp_path, content, message):
  _photos(tmp_path)
  (tmp_path / 'keypoints.json').write_text(json.dumps(content))
  with pytest.raises(UserError, match=message):
    folder.load_folder(tmp_path, 32)


def test_an_animated_gif_gives_its_first_frame_and_other_files_are_named(tmp_path):
  """Every image format PIL reads, GIFs included (an animation: its first frame, said so);
  a file the loader skips is named, not silently left out."""
  _photos(tmp_path)
  frames = [Image.fromarray(np.full((20, 30, 3), value, np.uint8)) for value in (200, 10)]
  frames[0].save(tmp_path / 'moving.gif', save_all=True, append_images=frames[1:])
  (tmp_path / 'notes.txt').write_text('my photos')
  (tmp_path / 'IMG_1.heic').write_bytes(b'not readable here')
  with pytest.warns(UserWarning) as caught:
    collection = folder.load_folder(tmp_path, 32)
  said = ' | '.join(str(w.message) for w in caught)
  assert 'moving.gif holds 2 frames (an animation, or pages): the first is used' in said
  assert '2 files are not images and are skipped: IMG_1.heic, notes.txt' in said
  assert collection.names == ('moving', 'p0', 'p1', 'p2')
  # The first frame (200), not the second (10): mid-grey 200 maps to 200 / 127.5 - 1.
  np.testing.assert_allclose(collection.images[0], 200 / 127.5 - 1, atol=0.02)


def test_images_sharing_a_stem_are_named_both(tmp_path):
  _photos(tmp_path)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'p1.jpg')
  with pytest.raises(UserError, match=r"p1.jpg and p1.png share the file stem 'p1'"):
    folder.load_folder(tmp_path, 32)
