"""Φ_align: the released code's U-Net (milesial's, `bilinear=False`) in Flax linen, NHWC.

Layout at `channel_multiplier` m (widths `int(64 m)` ... `int(1024 m)`, as the released
code computes them; 32 ... 512 at the default m = 0.5, 7,763,074 parameters):

  inc    DoubleConv -> 64m                              [B, H, W, 64m]
  down1..down4: 2x2 max-pool, DoubleConv -> 128m ... 1024m
  up1..up4: 2x2 stride-2 transposed conv (c -> c // 2, with bias), concatenate
         [skip, upsampled], DoubleConv -> 512m ... 64m
  head   1x1 conv (with bias) -> 2, kernel and bias zero: the residual flow starts at 0.

DoubleConv = (3x3 conv, no bias -> BatchNorm -> ReLU) x 2.

BatchNorm follows PyTorch: epsilon 1e-5, running averages updated with weight 0.1
(Flax momentum 0.9). Differences from PyTorch, both harmless: the running variance is the
biased batch variance (PyTorch stores the unbiased one; the factor n / (n - 1) is below
1.0002 for a batch of 20 at 256 px), and statistics are two-pass (mean, then mean squared
deviation) in float32 whatever the compute dtype. With `axis_name` set, the statistics are
those of the global batch: the module must run inside `shard_map` / `pmap` over that axis.

Initialisers are PyTorch's defaults: every conv kernel U(-1/sqrt(fan_in), 1/sqrt(fan_in))
(kaiming-uniform with a = sqrt(5)), the transposed conv's bias the same with PyTorch's
fan-in for transposed kernels (out_channels * 4, not in_channels * 4), BatchNorm scale 1
and bias 0. The transposed conv uses PyTorch's kernel layout and orientation: kernel
`[2, 2, out, in]`, `y[2i + a, 2j + b] = K[a, b] @ x[i, j]`, so PyTorch weights `[in, out,
2, 2]` load by `w.transpose(2, 3, 1, 0)`.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from asic_jax.models import layers

# Flax's running-average momentum: PyTorch's 0.1 update weight.
BN_MOMENTUM = 0.9

# Four 2x2 poolings: each side must divide by 2**4.
_SIDE_MULTIPLE = 16

# PyTorch's default conv init (kaiming_uniform_ with a = sqrt(5)): variance 1/(3 fan_in).
_torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def _torch_bias_init(fan_in: int) -> nn.initializers.Initializer:
  """PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class DoubleConv(nn.Module):
  """(3x3 conv, no bias -> BatchNorm -> ReLU) x 2: `[B, H, W, C]` -> `[B, H, W, features]`."""
  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i in (1, 2):
      x = layers.Conv3x3(self.features,
                         use_bias=False,
                         kernel_init=_torch_kernel_init,
                         dtype=self.dtype,
                         param_dtype=self.param_dtype,
                         name=f'conv{i}')(x)
      x = nn.BatchNorm(use_running_average=not train,
                       momentum=BN_MOMENTUM,
                       epsilon=1e-5,
                       dtype=self.dtype,
                       param_dtype=self.param_dtype,
                       axis_name=self.axis_name,
                       use_fast_variance=False,
                       name=f'bn{i}')(x)
      x = nn.relu(x)
    return x


class Up(nn.Module):
  """Transposed conv x2 (C -> C // 2), concatenate [skip, upsampled], DoubleConv."""
  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, skip: jax.Array, train: bool) -> jax.Array:
    """x: `[B, h, w, C]`; skip: `[B, 2h, 2w, S]` -> `[B, 2h, 2w, features]`."""
    up_features = x.shape[-1] // 2
    # transpose_kernel: PyTorch's layout and orientation; kernel [2, 2, out, in], whose
    # fan_in for the default initialiser is out * 4, PyTorch's fan_in for this kernel.
    x = layers.UpConv2x2(up_features,
                         kernel_init=_torch_kernel_init,
                         bias_init=_torch_bias_init(up_features * 4),
                         dtype=self.dtype,
                         param_dtype=self.param_dtype,
                         name='up')(x)
    x = jnp.concatenate([skip, x], axis=-1)
    return DoubleConv(self.features, self.dtype, self.param_dtype, self.axis_name,
                      name='conv')(x, train)


class UNet(nn.Module):
  """The alignment U-Net: images `[B, H, W, C]` -> residual flow `[B, H, W, 2]`.

  Attributes:
    channel_multiplier: m; widths int(64 m) ... int(1024 m).
    dtype: computation dtype (float32, or bfloat16 on GPUs and TPUs); the output has it.
    param_dtype: parameter dtype.
    axis_name: the mapped axis BatchNorm averages its statistics over (e.g. 'data'), or
      None for statistics of the local batch.
  """
  channel_multiplier: float = 0.5
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    """Residual flow of a batch.

    Args:
      images: `[B, H, W, C]`, H and W multiples of 16.
      train: BatchNorm with batch statistics (and running averages updated; make
        'batch_stats' mutable) if True, with the running averages if False.

    Returns:
      `[B, H, W, 2]` in `dtype`: the (x, y) offset from the identity, normalised frame.
    """
    if images.ndim != 4:
      raise ValueError(f'images must be [B, H, W, C], got shape {images.shape}')
    height, width = images.shape[1:3]
    if height % _SIDE_MULTIPLE or width % _SIDE_MULTIPLE:
      raise ValueError(f'images height and width must be multiples of {_SIDE_MULTIPLE} '
                       f'(four 2x2 poolings), got {height}x{width}')
    widths = [int(base * self.channel_multiplier) for base in (64, 128, 256, 512, 1024)]
    common = dict(dtype=self.dtype, param_dtype=self.param_dtype, axis_name=self.axis_name)

    x = DoubleConv(widths[0], name='inc', **common)(images, train)
    skips = []
    for i, features in enumerate(widths[1:], start=1):
      skips.append(x)
      x = layers.max_pool_2x2(x)
      x = DoubleConv(features, name=f'down{i}', **common)(x, train)
    for i, (features, skip) in enumerate(zip(widths[-2::-1], skips[::-1]), start=1):
      x = Up(features, name=f'up{i}', **common)(x, skip, train)
    return nn.Conv(2, (1, 1),
                   kernel_init=nn.initializers.zeros,
                   bias_init=nn.initializers.zeros,
                   dtype=self.dtype,
                   param_dtype=self.param_dtype,
                   name='head')(x)
