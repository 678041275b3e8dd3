"""Bilinear sampling, and THE coordinate convention of asic_jax.

Every sampling, keypoint, flow and transfer in this package uses one convention:

* Arrays are channel-last: an image is `[H, W, C]`, a batch `[B, H, W, C]`.
* A point is `(x, y)` = (column, row), in that order, in pixels or normalised.
* Normalised coordinates are corner-aligned: pixel `i` of a side of length `L`
  maps to `-1 + 2 i / (L - 1)`, so -1 and 1 are the centres of the first and
  last pixels. This is PyTorch's `grid_sample(..., align_corners=True)` frame,
  the frame the released ASIC code trains in.
* A flow `[H, W, 2]` holds, at every pixel, a normalised `(x, y)` point in the
  canonical square; the identity flow is `identity_grid(H, W)`.

The released code's evaluation maps keypoints with a pixel-centre convention
(`(2p + 1) / L - 1`, half a pixel off training's); we do not (DESIGN §8.2).
"""

from typing import Literal, Sequence

import jax
import jax.numpy as jnp

Padding = Literal['zeros', 'border']


def _wh(size: int | Sequence[int]) -> tuple[int, int]:
  """`size` as (width, height): an int is a square side."""
  if isinstance(size, int):
    return size, size
  width, height = size
  return int(width), int(height)


def _floating(x: jax.Array) -> jax.Array:
  """Integer pixels (a transfer's output) as float32; floats keep their dtype."""
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def pixel_to_normalized(points: jax.Array, size: int | Sequence[int]) -> jax.Array:
  """Pixels to corner-aligned normalised coordinates.

  Args:
    points: `[..., 2]`, (x, y) in pixels of an image of `size`.
    size: the side of a square image, or its (width, height).

  Returns:
    `[..., 2]`, (x, y) in [-1, 1] for points inside the image.
  """
  width, height = _wh(size)
  points = _floating(points)
  scale = jnp.asarray([2.0 / (width - 1), 2.0 / (height - 1)], dtype=points.dtype)
  return points * scale - 1.0


def normalized_to_pixel(coords: jax.Array, size: int | Sequence[int]) -> jax.Array:
  """Inverse of `pixel_to_normalized`: `[..., 2]` (x, y) in [-1, 1] to pixels."""
  width, height = _wh(size)
  coords = _floating(coords)
  scale = jnp.asarray([(width - 1) / 2.0, (height - 1) / 2.0], dtype=coords.dtype)
  return (coords + 1.0) * scale


def identity_grid(height: int, width: int, dtype=jnp.float32) -> jax.Array:
  """The identity flow: `[height, width, 2]`, (x, y) of every pixel, normalised."""
  xs = jnp.linspace(-1.0, 1.0, width, dtype=dtype)
  ys = jnp.linspace(-1.0, 1.0, height, dtype=dtype)
  return jnp.stack(jnp.meshgrid(xs, ys, indexing='xy'), axis=-1)


def _clip_without_gradient_at_edges(v: jax.Array, high: float) -> jax.Array:
  """`clip(v, 0, high)` whose gradient is 1 strictly inside and 0 elsewhere, edges included
  (PyTorch's `clip_coordinates_set_grad`; `jnp.clip` would pass a gradient at the edges)."""
  inside = (v > 0.0) & (v < high)
  return jnp.where(inside, v, jax.lax.stop_gradient(jnp.clip(v, 0.0, high)))


def grid_sample(image: jax.Array, coords: jax.Array, padding: Padding = 'zeros') -> jax.Array:
  """Bilinear sampling of one image at normalised points.

  Equals `torch.nn.functional.grid_sample(mode='bilinear', align_corners=True)`
  with `padding_mode` 'zeros' or 'border', values and both gradients (for
  'border' the gradient w.r.t. a coordinate clipped to the image is zero, as in
  PyTorch). Batch with `jax.vmap`; a grid shared by a batch of flows (the
  canonical grid) needs no vmap: `grid_sample(grid, flows)`.

  Args:
    image: `[H, W, C]`.
    coords: `[..., 2]`, (x, y) in the corner-aligned normalised frame.
    padding: 'zeros' (outside taps contribute 0; their weight is dropped, not
      renormalised) or 'border' (coordinates clipped to the image first).

  Returns:
    `[..., C]`, in the dtype of `image`.
  """
  if padding not in ('zeros', 'border'):
    raise ValueError(f"padding must be 'zeros' or 'border', got {padding!r}")
  height, width, channels = image.shape
  x = (coords[..., 0] + 1.0) * (0.5 * (width - 1))
  y = (coords[..., 1] + 1.0) * (0.5 * (height - 1))
  if padding == 'border':
    x = _clip_without_gradient_at_edges(x, width - 1.0)
    y = _clip_without_gradient_at_edges(y, height - 1.0)
  x0 = jnp.floor(x)
  y0 = jnp.floor(y)
  wx1 = x - x0
  wy1 = y - y0
  wx0 = 1.0 - wx1
  wy0 = 1.0 - wy1
  x0 = x0.astype(jnp.int32)
  y0 = y0.astype(jnp.int32)
  flat = image.reshape(height * width, channels)

  def tap(xi, yi, weight):
    inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    index = jnp.clip(yi, 0, height - 1) * width + jnp.clip(xi, 0, width - 1)
    values = jnp.take(flat, index, axis=0, mode='clip')
    return values * jnp.where(inside, weight, 0.0)[..., None].astype(image.dtype)

  return (tap(x0, y0, wx0 * wy0) + tap(x0 + 1, y0, wx1 * wy0) + tap(x0, y0 + 1, wx0 * wy1) +
          tap(x0 + 1, y0 + 1, wx1 * wy1))


def resize(image: jax.Array, height: int, width: int) -> jax.Array:
  """Bilinear, corner-aligned resize of `[H, W, C]` to `[height, width, C]`.

  Equals `F.interpolate(mode='bilinear', align_corners=True)`, the resize the
  released code applies to images and masks before the reconstruction loss.
  """
  return grid_sample(image, identity_grid(height, width, image.dtype), padding='border')


def block_mean(x: jax.Array, factor: int) -> jax.Array:
  """Average `[..., H, W, C]` over non-overlapping `factor` x `factor` blocks.

  For `factor` 2 this equals the released code's flow reduction,
  `F.interpolate(scale_factor=0.5, mode='bilinear')` (align_corners=False, no
  antialias). For larger factors it is the box average (PyTorch's bilinear
  would read only the 2 x 2 pixels nearest each block centre).
  """
  if factor == 1:
    return x
  *lead, height, width, channels = x.shape
  if height % factor or width % factor:
    raise ValueError(f'{height}x{width} does not divide by {factor}')
  x = x.reshape(*lead, height // factor, factor, width // factor, factor, channels)
  return x.mean(axis=(-4, -2))
