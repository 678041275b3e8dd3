"""Per-image horizontal mirrors (orientation-aware alignment)."""

import numpy as np

from asic_jax.ops import flip


def test_mirror_is_numpy_fliplr_on_flagged_images_and_an_involution():
  x = np.random.default_rng(0).normal(size=(3, 4, 5, 2)).astype(np.float32)
  flags = np.asarray([True, False, True])
  out = np.asarray(flip.mirror(x, flags))
  np.testing.assert_array_equal(out[0], x[0][:, ::-1])
  np.testing.assert_array_equal(out[1], x[1])
  np.testing.assert_array_equal(out[2], x[2][:, ::-1])
  np.testing.assert_array_equal(np.asarray(flip.mirror(out, flags)), x)
  np.testing.assert_array_equal(flip.mirror_np(x, flags), out)
  np.testing.assert_array_equal(np.asarray(flip.mirror(x, None)), x)
  masks = x[..., 0]  # [N, H, W]: same rule without a channel axis
  np.testing.assert_array_equal(np.asarray(flip.mirror(masks, flags))[2], masks[2][:, ::-1])


def test_mirror_points_follow_the_mirrored_pixels():
  width = 5
  image = np.arange(4 * width).reshape(1, 4, width)
  points = np.asarray([[[0.0, 1.0], [3.0, 2.0], [4.0, 3.0]]])
  moved = flip.mirror_points(points, np.asarray([[True]]), width)
  mirrored = image[0][:, ::-1]
  for (x, y), (mx, my) in zip(points[0], moved[0]):
    assert image[0, int(y), int(x)] == mirrored[int(my), int(mx)]
  np.testing.assert_array_equal(flip.mirror_points(points, np.asarray([[False]]), width), points)
