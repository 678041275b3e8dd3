"""The canonical grid G: `[G, G, C]` (RGB + mask logit), and its sampling by flows.

G is a plain array (the `Asic` module holds it as its parameter 'grid'), sampled
bilinearly with border padding in the frame of `asic_jax.ops.sampling`.
"""

import jax
import jax.numpy as jnp

from asic_jax.ops import sampling

# The released code's `Canonical(std=0.1)`.
_INIT_STD = 0.1


def init_grid(key: jax.Array, size: int, channels: int = 4) -> jax.Array:
  """A fresh canonical grid: `[size, size, channels]`, entries N(0, 0.1^2)."""
  if size < 2:
    raise ValueError(f'size must be at least 2, got {size}')
  if channels < 1:
    raise ValueError(f'channels must be positive, got {channels}')
  return _INIT_STD * jax.random.normal(key, (size, size, channels), jnp.float32)


def sample_grid(grid: jax.Array, flow: jax.Array, size: int) -> jax.Array:
  """The canonical grid seen through each image's flow (the released `Canonical.unwarp`).

  When `size` is below the flow's height, the flow is first averaged over blocks of
  `H // size` pixels (for factor 2 exactly the released bilinear 0.5x resize). The grid is
  shared by the whole batch: it is never broadcast to B copies.

  Args:
    grid: `[G, G, C]`, the canonical grid.
    flow: `[B, H, W, 2]`, (x, y) in [-1, 1], corner-aligned: canonical points per pixel.
    size: output height; must divide H (and the same factor must divide W).

  Returns:
    `[B, size, W * size // H, C]` (`[B, size, size, C]` for square flows), in the grid's
    dtype.
  """
  if grid.ndim != 3:
    raise ValueError(f'grid must be [G, G, C], got shape {grid.shape}')
  if flow.ndim != 4 or flow.shape[-1] != 2:
    raise ValueError(f'flow must be [B, H, W, 2], got shape {flow.shape}')
  height = flow.shape[1]
  if size < 1 or height % size:
    raise ValueError(f'size must divide the flow height {height}, got {size}')
  flow = sampling.block_mean(flow, height // size)
  return sampling.grid_sample(grid, flow, padding='border')
