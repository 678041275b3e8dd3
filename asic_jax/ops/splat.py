"""Forward splatting: scattering values at points into an image, then normalising.

The inverse of `sampling.grid_sample`: where sampling reads an image at points,
splatting writes values at points. A point `(x, y)` (pixels, the corner-aligned
frame of `asic_jax.ops.sampling`) adds `weight * value` to its four neighbouring
pixels with the bilinear weights of `grid_sample`, so integer points land on one
pixel exactly and every point inside the image adds `weight` to the total weight.
Taps outside the image are dropped. Pure `jax.numpy` (`.at[].add`), jit-friendly.
"""

import jax
import jax.numpy as jnp


def splat(points: jax.Array,
          values: jax.Array,
          height: int,
          width: int,
          weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Bilinear splatting of `values` at `points` into a `height` x `width` image.

  Args:
    points: `[P, 2]`, (x, y) pixels of the output image (float or integer).
    values: `[P, C]`.
    height, width: the output image's size.
    weights: `[P]` non-negative weight of each point (1 when None).

  Returns:
    (accumulated `[height, width, C]`: the sum of weight * tap * value at each pixel,
    weight `[height, width]`: the sum of weight * tap), both float32.
  """
  points = jnp.asarray(points, jnp.float32)
  values = jnp.asarray(values, jnp.float32)
  weights = jnp.ones(points.shape[:1], jnp.float32) if weights is None else jnp.asarray(
      weights, jnp.float32)
  x, y = points[:, 0], points[:, 1]
  x0, y0 = jnp.floor(x), jnp.floor(y)
  wx1, wy1 = x - x0, y - y0
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  taps = ((x0, y0, (1 - wx1) * (1 - wy1)), (x0 + 1, y0, wx1 * (1 - wy1)),
          (x0, y0 + 1, (1 - wx1) * wy1), (x0 + 1, y0 + 1, wx1 * wy1))
  index, tap_weight = [], []
  for xi, yi, w in taps:
    inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    # Outside taps get an out-of-range index, which the scatter drops.
    index.append(jnp.where(inside, yi * width + xi, height * width))
    tap_weight.append(w * weights)
  index = jnp.concatenate(index)
  tap_weight = jnp.concatenate(tap_weight)
  accumulated = jnp.zeros((height * width, values.shape[-1]),
                          jnp.float32).at[index].add(jnp.tile(values, (4, 1)) * tap_weight[:, None],
                                                     mode='drop')
  weight = jnp.zeros((height * width,), jnp.float32).at[index].add(tap_weight, mode='drop')
  return accumulated.reshape(height, width, -1), weight.reshape(height, width)


def normalize(accumulated: jax.Array, weight: jax.Array) -> jax.Array:
  """The weighted mean `accumulated / weight` `[H, W, C]` where weight > 0, else 0."""
  covered = weight > 0
  return jnp.where(covered[..., None], accumulated / jnp.where(covered, weight, 1.0)[..., None],
                   0.0)
