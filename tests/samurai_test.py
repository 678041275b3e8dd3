"""Tests of asic_jax.data.samurai: images and masks of any mode through one frame."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from asic_jax.data import samurai
from asic_jax.data import thresholds
from asic_jax.errors import UserError
from conftest import load_config

S = 40


def _half_mask(width: int, height: int) -> np.ndarray:
  """1 on the left half, 0 on the right."""
  mask = np.zeros((height, width), np.uint8)
  mask[:, :width // 2] = 255
  return mask


@pytest.fixture
def root(tmp_path) -> pathlib.Path:
  images = tmp_path / 'SAMURAI' / 'duck' / 'images'
  masks = tmp_path / 'SAMURAI' / 'duck' / 'masks'
  images.mkdir(parents=True)
  masks.mkdir()
  # a: 40 x 20 RGB with an opaque RGB mask; b: 20 x 40 8-bit gray with a 16-bit mask;
  # c: 30 x 30 opaque RGBA with a cut-out (RGBA, alpha 128) as its mask.
  Image.new('RGB', (40, 20), (10, 20, 30)).save(images / 'a.png')
  Image.fromarray(np.repeat(_half_mask(40, 20)[..., None], 3, -1)).save(masks / 'a.png')
  Image.new('L', (20, 40), 100).save(images / 'b.jpg')
  Image.fromarray(np.full((40, 20), 32896, np.uint16)).save(masks / 'b.png')
  Image.new('RGBA', (30, 30), (50, 60, 70, 255)).save(images / 'c.png')
  Image.new('RGBA', (30, 30), (255, 255, 255, 128)).save(masks / 'c.png')
  return tmp_path


def test_images_and_masks(root):
  duck = samurai.load_samurai(root, 'duck', S)
  assert duck.names == ('a', 'b', 'c')
  assert duck.images.shape == (3, S, S, 3) and duck.masks.shape == (3, S, S)
  assert duck.keypoints is None and duck.eval_pairs is None
  np.testing.assert_allclose(duck.images[0],
                             np.broadcast_to(np.asarray([10, 20, 30]) / 127.5 - 1, (S, S, 3)),
                             atol=1e-6)
  np.testing.assert_allclose(duck.images[2, 5, 5], np.asarray([50, 60, 70]) / 127.5 - 1, atol=1e-6)
  # a is 40 x 20: side 40 = S, so no resize; 10 edge-replicated rows above and below.
  expected = np.pad(_half_mask(40, 20) / 255.0, ((10, 10), (0, 0)), mode='edge')
  np.testing.assert_allclose(duck.masks[0], expected, atol=1e-6)
  np.testing.assert_allclose(duck.masks[1], 32896 / 65535, atol=1e-6)  # 16-bit gray
  np.testing.assert_allclose(duck.masks[2], 128 / 255, atol=1e-6)  # alpha of a cut-out


def test_gray_image_is_converted(root):
  duck = samurai.load_samurai(root, 'duck', S)
  # b.jpg is uniform gray 100 (JPEG keeps a flat image flat up to rounding).
  np.testing.assert_allclose(duck.images[1], 100 / 127.5 - 1, atol=1.5 / 127.5)


def test_thresholds(root):
  duck = samurai.load_samurai(root, 'duck', S)
  assert duck.threshold_kind == 'img'
  np.testing.assert_array_equal(duck.thresholds, [S, S, S])
  with pytest.raises(UserError, match='boxes'):
    thresholds.with_threshold(duck, 'bbox')


def test_without_masks(root):
  for path in (root / 'SAMURAI' / 'duck' / 'masks').iterdir():
    path.unlink()
  (root / 'SAMURAI' / 'duck' / 'masks').rmdir()
  assert samurai.load_samurai(root, 'duck', S).masks is None


def test_missing_dataset_and_bad_input(root, tmp_path):
  with pytest.raises(UserError, match='SAMURAI.*markboss.me') as error:
    samurai.load_samurai(tmp_path / 'nowhere', 'duck', S)
  assert str(tmp_path / 'nowhere' / 'SAMURAI') in str(error.value)
  with pytest.raises(UserError, match="no category 'shoe'; valid: duck"):
    samurai.load_samurai(root, 'shoe', S)
  masks = root / 'SAMURAI' / 'duck' / 'masks'
  Image.new('L', (10, 10)).save(masks / 'a.png')
  with pytest.raises(UserError, match='mask .*a.png is 10 x 10'):
    samurai.load_samurai(root, 'duck', S)
  (masks / 'a.png').unlink()
  with pytest.raises(UserError, match='no mask for 1 image'):
    samurai.load_samurai(root, 'duck', S)
  (root / 'SAMURAI' / 'duck' / 'images' / 'a.png').write_bytes(b'not an image')
  (masks / 'a.png').write_bytes(b'not an image')
  with pytest.raises(UserError, match='a.png'):
    samurai.load_samurai(root, 'duck', S)


def test_config():
  config = load_config('samurai', 'duck,released')
  assert (config.data.name, config.data.category, config.preset) == ('samurai', 'duck', 'released')
  assert config.eval.threshold == ''
  with pytest.raises(UserError, match='needs one object name'):
    load_config('samurai')
