"""ASIC's model: the alignment U-Net Φ_align and the canonical grid G, in one module.

Variables of `Asic`: `{'params': {'align': <UNet params>, 'grid': [G, G, C]},
'batch_stats': {'align': ...}}`, so one optax optimizer sees the tree {align, grid}.
`Asic().init(key, images, train=False)` creates both (setup declares the grid, and any
call runs setup).

    model = make_model(config)   # or Asic(channel_multiplier=..., grid_size=...)
    variables = model.init(key, jnp.zeros((1, 256, 256, 3)), train=False)
    flow, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
    recon = model.apply(variables, flow, 128, method=Asic.reconstruct)
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from asic_jax.errors import UserError
from asic_jax.models import canonical
from asic_jax.models.unet import UNet
from asic_jax.ops import sampling

# Compute dtypes of the U-Net (parameters stay float32).
DTYPES = ('float32', 'bfloat16')


class Asic(nn.Module):
  """Φ_align (flow = identity + U-Net residual, no tanh) and the canonical grid.

  Attributes:
    channel_multiplier: the U-Net's width multiplier m (0.5: widths 32 ... 512).
    grid_size: G, the side of the canonical grid.
    grid_channels: C, RGB + mask logit.
    dtype: the U-Net's computation dtype; parameters and the flow are float32.
    bn_axis_name: mapped axis for synchronised BatchNorm (e.g. 'data'), or None.
  """
  channel_multiplier: float = 0.5
  grid_size: int = 256
  grid_channels: int = 4
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None

  def setup(self):
    self.align = UNet(channel_multiplier=self.channel_multiplier,
                      dtype=self.dtype,
                      axis_name=self.bn_axis_name)
    self.grid = self.param('grid', canonical.init_grid, self.grid_size, self.grid_channels)

  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    """The flow of every image into the canonical square.

    Args:
      images: `[B, H, W, 3]` in [-1, 1]; H and W multiples of 16.
      train: BatchNorm with batch statistics (make 'batch_stats' mutable) or running
        averages; see `UNet`.

    Returns:
      flow: `[B, H, W, 2]` float32, (x, y) in the normalised frame; identity + residual.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'images must be [B, H, W, 3], got shape {images.shape}')
    residual = self.align(images, train=train).astype(jnp.float32)
    return sampling.identity_grid(*images.shape[1:3]) + residual

  def reconstruct(self, flow: jax.Array, size: int) -> jax.Array:
    """The grid sampled by `flow` `[B, H, W, 2]` at `size`: `[B, size, size, C]`.

    See `canonical.sample_grid`; `size` must be static under jit.
    """
    return canonical.sample_grid(self.grid, flow, size)


def make_model(config: ml_collections.ConfigDict, *, bn_axis_name: str | None = None) -> Asic:
  """The model `config.model` and `config.dtype` describe: the one place it is built (training,
  the flows of a trained run, checkpoint shapes).

  Args:
    config: the run's config.
    bn_axis_name: the mapped axis BatchNorm synchronises over (`parallel.AXIS` inside the
      data-parallel step), or None outside it.
  """
  if config.dtype not in DTYPES:
    raise UserError(f'config.dtype must be one of {DTYPES}, got {config.dtype!r}')
  return Asic(channel_multiplier=config.model.channel_multiplier,
              grid_size=config.model.grid_size,
              dtype=jnp.dtype(config.dtype),
              bn_axis_name=bn_axis_name)
