"""Tests of asic_jax.drawing: value ranges to bytes, tiles at their offsets, markers and lines
where their points are, plots only when there is something to plot."""

import numpy as np
from PIL import Image

from asic_jax import drawing


def test_to_uint8_grey_and_labels():
  np.testing.assert_array_equal(drawing.to_uint8(np.asarray([[-1.0, 0.0, 1.0, 2.0]]), low=-1.0),
                                [[0, 128, 255, 255]])
  np.testing.assert_array_equal(drawing.grey(np.asarray([[0.0, 1.0]])),
                                [[[0, 0, 0], [255, 255, 255]]])
  labels = drawing.colour_labels(np.asarray([[0, 1, 3]]), num_labels=3)
  np.testing.assert_array_equal(labels[0, :2], drawing.PALETTE[:2])
  np.testing.assert_array_equal(labels[0, 2], [0, 0, 0])  # the background label


def test_tile_places_each_image_at_its_offset():
  a = np.full((4, 3, 3), 10, np.uint8)
  b = np.full((2, 5, 3), 20, np.uint8)
  out = drawing.tile([[a, b], [b]])
  assert out.shape == (4 + 2 + 2, 3 + 2 + 5, 3)
  assert np.all(out[:4, :3] == 10) and np.all(out[:2, 5:10] == 20) and np.all(out[6:8, :5] == 20)
  assert np.all(out[2:4, 5:] == 255) and np.all(out[4:6] == 255)


def test_points_and_lines_are_drawn_where_they_are():
  image = np.zeros((48, 48, 3), np.uint8)
  drawn = drawing.draw_points(image, np.asarray([[10.0, 30.0]]), [(255, 0, 0)])
  np.testing.assert_array_equal(drawn[30, 10], [255, 0, 0])  # the disc's centre
  assert drawn[:20].max() == 0 and drawn[:, 20:].max() == 0  # nothing far from it
  ring = drawing.draw_points(image, np.asarray([[24.0, 24.0]]), [(0, 255, 0)], hollow=True)
  # A ring of radius 2 (a 48-px image): its centre bare, its edge green.
  assert ring[24, 24].max() == 0 and ring[24, 22, 1] == 255 and ring[24, 22, 0] == 0
  line = drawing.draw_lines(image, np.asarray([[0.0, 5.0]]), np.asarray([[47.0, 5.0]]),
                            [(0, 0, 255)])
  assert np.all(line[5, :, 2] == 255) and line[20:].max() == 0
  both = drawing.side_by_side_matches(image, image[:, :30], np.asarray([[1.0, 1.0]]),
                                      np.asarray([[2.0, 2.0]]), [(9, 9, 9)])
  assert both.shape == (48, 48 + 2 + 30, 3)


def test_method_labels():
  assert drawing.method_label({}) == 'ASIC'
  assert drawing.method_label({'method': 'dino_nn'}) == 'DINO+NN'
  assert drawing.method_label({'method': 'vgg16_mls'}) == 'VGG-16+MLS'
  assert drawing.method_label({'method': 'dinov2_nn'}) == 'DINOv2+NN'


def test_plots_only_with_curves():
  assert drawing.pck_plot(None) is None
  assert drawing.pck_plot({'method': 'asic', 'pck': {}}) is None
  assert drawing.loss_plot([]) is None
  curve = {'0.10': 0.5, '0.05': 0.2}
  plot = drawing.pck_plot({
      'pck': curve,
      'k_cycle': {
          '2': {
              'metric': '2-CyPCK',
              'pck': curve
          }
      }
  }, [{
      'method': 'dino_nn',
      'pck': curve
  }])
  assert plot.dtype == np.uint8 and plot.shape == (390, 600, 3)
  losses = drawing.loss_plot([{
      'step': 5,
      'total': 2.0,
      'kp': 1.0
  }, {
      'step': 10,
      'total': 1.0,
      'kp': 0.5
  }])
  assert losses.shape == (200, 2 * 260, 3)  # two panels side by side


def test_write_png_round_trips(tmp_path):
  image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
  drawing.write_png(tmp_path / 'a.png', image)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'a.png')), image)
  assert [p.name for p in tmp_path.iterdir()] == ['a.png']
