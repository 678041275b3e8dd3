"""Horizontal mirrors of images, maps and points, per image (orientation-aware alignment).

An image marked `flipped` is shown to the alignment network mirrored; everything else —
its flow, canonical map, matches, masks, keypoints and every output — stays in the photo's
own pixels. `flow = mirror(unet(mirror(image)))` is the whole of it: the network sees the
oriented photo, and the canonical point it gives for oriented pixel `(W - 1 - x, y)` belongs
to the photo's pixel `(x, y)`. The canonical coordinates themselves are not mirrored: the
canonical square is shared by all images.

Frames: arrays `[N, H, W, ...]` (channel-last), points (x, y) pixels, corner-aligned
(`asic_jax.ops.sampling`): pixel x of a side W mirrors to W - 1 - x.
"""

import jax
import jax.numpy as jnp
import numpy as np


def mirror(x: jax.Array, flipped: jax.Array | None) -> jax.Array:
  """`x [N, H, W, ...]` with every image whose `flipped [N]` is True mirrored left-right.
  None (no orientation) returns `x` unchanged. An involution: `mirror(mirror(x, f), f) == x`."""
  if flipped is None:
    return x
  flipped = jnp.asarray(flipped, bool).reshape((-1,) + (1,) * (x.ndim - 1))
  return jnp.where(flipped, x[:, :, ::-1], x)


def mirror_np(x: np.ndarray, flipped: np.ndarray | None) -> np.ndarray:
  """`mirror` on the host (numpy), for masks, parts and descriptor grids."""
  if flipped is None:
    return x
  out = np.array(x, copy=True)
  out[np.asarray(flipped, bool)] = out[np.asarray(flipped, bool)][:, :, ::-1]
  return out


def mirror_points(points: np.ndarray, flipped, width: int) -> np.ndarray:
  """Points `[..., 2]` (x, y) in a `width`-pixel frame, x -> width - 1 - x where `flipped`
  (broadcast against the points' leading axes, e.g. `[E, 1]` for `[E, K, 2]`)."""
  points = np.asarray(points, np.float32)
  flipped = np.asarray(flipped, bool)[..., None]
  return np.where(flipped & np.asarray([True, False]), (width - 1) - points, points)
