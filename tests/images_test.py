"""Tests of asic_jax.data.images: the square frame against hand-worked pixel centres, reading
every image mode to RGB, masks, listing and number checks."""

import numpy as np
import pytest
from PIL import Image

from asic_jax.data import images
from asic_jax.errors import UserError

# A 40 x 20 image in a 32 frame: 10 rows of padding on top, scale 32 / 40 = 0.8.
FRAME = images.SquareFrame(left=0, top=10, scale=0.8, width=40, height=20)


def test_square_pads_centred_and_records_its_frame():
  image = np.zeros((20, 40, 3), np.uint8)
  image[0] = 200  # the top row, which edge padding repeats upward
  square, frame = images.square(image, 32)
  assert square.shape == (32, 32, 3)
  assert frame == FRAME
  np.testing.assert_array_equal(square[:7], 200)  # padding rows 0 ... 9 -> 0 ... 7.5
  np.testing.assert_array_equal(square[-5:], 0)


def test_points_follow_pixel_centres():
  # (p + pad + 0.5) * 0.8 - 0.5.
  np.testing.assert_allclose(FRAME.points([[0.0, 0.0], [39.0, 19.0]]), [[-0.1, 7.9], [31.1, 23.1]],
                             atol=1e-6)
  xy = np.random.default_rng(0).uniform(-5, 45, (10, 2))
  np.testing.assert_allclose(FRAME.to_original(FRAME.points(xy)), xy, atol=1e-4)


def test_boxes_map_both_corners():
  box = FRAME.boxes([0.0, 0.0, 39.0, 19.0])
  np.testing.assert_allclose(box, [-0.1, 7.9, 31.1, 23.1], atol=1e-6)
  assert box.dtype == np.float32
  two = FRAME.boxes(np.zeros((3, 2, 4)))
  assert two.shape == (3, 2, 4)


def test_area_is_the_photo_not_the_padding():
  area = FRAME.area(32)
  # Row y shows the photo iff (y + 0.5) / 0.8 - 10.5 lies in [-0.5, 19.5]: rows 8 ... 23.
  np.testing.assert_array_equal(np.nonzero(area.any(1))[0], np.arange(8, 24))
  assert area.sum() == 16 * 32
  np.testing.assert_array_equal(images.SquareFrame(0, 0, 1.0).area(4), np.ones((4, 4)))


def test_length_scales():
  assert FRAME.length(10.0) == pytest.approx(8.0)


def test_unsquare_gives_back_the_photo_at_its_size(tmp_path):
  """A 48 x 40 photo squared to 32 px and back: its own size, its content (the padding cut)."""
  rng = np.random.default_rng(0)
  photo = np.kron(rng.integers(0, 255, (5, 6, 3)), np.ones((8, 8, 1))).astype(np.uint8)
  square, frame = images.square(photo, 32)
  back = frame.unsquare(square)
  assert back.shape == photo.shape and (frame.width, frame.height) == (48, 40)
  assert np.abs(back.astype(float) - photo).mean() < 12  # resampled twice, blocks of 8 px
  np.testing.assert_allclose(frame.to_original(frame.points([[3.0, 7.0]])), [[3.0, 7.0]])


def test_to_unit_range():
  np.testing.assert_allclose(images.to_unit_range(np.asarray([0, 255], np.uint8)), [-1.0, 1.0])


def test_read_rgb_modes(tmp_path):
  Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / 'wide.png')
  np.testing.assert_array_equal(images.read_rgb(tmp_path / 'wide.png'), 255)
  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[..., 0] = 200
  rgba[0, 0, 3] = 0  # transparent: white
  rgba[0, 1, 3] = 255  # opaque: itself
  Image.fromarray(rgba).save(tmp_path / 'alpha.png')
  rgb = images.read_rgb(tmp_path / 'alpha.png')
  np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])
  np.testing.assert_array_equal(rgb[0, 1], [200, 0, 0])
  with pytest.raises(UserError, match='image not found'):
    images.read_rgb(tmp_path / 'none.png')
  (tmp_path / 'text.png').write_text('not an image')
  with pytest.raises(UserError, match='cannot read image'):
    images.read_rgb(tmp_path / 'text.png')


def test_read_mask_uses_alpha_else_gray(tmp_path):
  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[..., 3] = [[0, 51], [255, 255]]
  Image.fromarray(rgba).save(tmp_path / 'alpha.png')
  np.testing.assert_allclose(images.read_mask(tmp_path / 'alpha.png'), [[0, 0.2], [1, 1]])
  Image.fromarray(np.asarray([[0, 255]], np.uint8)).save(tmp_path / 'gray.png')
  np.testing.assert_allclose(images.read_mask(tmp_path / 'gray.png'), [[0, 1]])


def test_listing(tmp_path):
  for name in ('b.PNG', 'a.jpg', 'notes.txt', '.hidden', 'keypoints.json'):
    (tmp_path / name).write_bytes(b'')
  assert [p.name for p in images.list_images(tmp_path)] == ['a.jpg', 'b.PNG']
  assert images.skipped_files(tmp_path, ('keypoints.json',)) == ['notes.txt']
  with pytest.raises(UserError, match="share the file stem 'a'"):
    images.unique_stems([tmp_path / 'a.jpg', tmp_path / 'a.png'], 'here')


def test_numbers():
  np.testing.assert_array_equal(images.numbers([[1, 2.5]], 'kp'), [[1.0, 2.5]])
  with pytest.raises(UserError, match="kp: expected numbers, got '12'"):
    images.numbers([['12', 'x']], 'kp')
  with pytest.raises(UserError, match='kp: expected numbers, got True'):
    images.numbers([True, False], 'kp')
  with pytest.raises(UserError, match='rows of numbers of one length'):
    images.numbers([[1, 2], [3]], 'kp')
