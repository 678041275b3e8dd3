"""Convolution layers that XLA:CPU runs fast, with the parameters of Flax's own.

XLA's CPU convolutions are fast on large feature maps and pathological on tiny ones: a 3x3
convolution of a 2x2 map (512 -> 512 channels, batch 16) took 104 ms forward where its
arithmetic is 0.3 GFLOP (1.2 ms as a matrix product), and the kernel gradient of the U-Net's
2x2 stride-2 transposed convolution ran as a base-dilated convolution with a 64x64 window,
75 ms each (`BENCHMARKS.md`, "Where the CPU step went"). These modules compute the same
functions as `nn.Conv` and `nn.ConvTranspose` through matrix products where that is faster,
and keep their parameter names, shapes, initialisers and dtype promotion, so checkpoints,
converted PyTorch weights and initial values are unchanged.

Frames: NHWC, `[B, H, W, C]`.
"""

from typing import Any

import flax.linen as nn
from flax.linen import dtypes
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

# At or below this many pixels per feature map a 3x3 convolution runs as one matrix product
# of the nine shifted copies (im2col); above it XLA's convolution wins (measured on a 2-core
# AVX-512 CPU: 8x8x256 im2col 11 ms vs 19 ms forward + both gradients; 16x16x128 25 vs 12 ms).
# Those figures are of jaxlib's default YNNPACK convolution; with XLA's own
# (`parallel.compiler_options`, batch 32) the 8x8 map prefers it (35 vs 54 ms) and 4x4 and 2x2
# still prefer im2col (29 vs 37, 14 vs 665 ms), but a threshold of 16 or 4 left the `cpu` step
# where it was (818 and 827 against 814 ms, compiled side by side): 64 stays.
IM2COL_MAX_PIXELS = 64


def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """'same' 3x3 convolution (cross-correlation, as `nn.Conv`): `[B, H, W, C]` with
  `[3, 3, C, O]` -> `[B, H, W, O]`."""
  height, width = x.shape[1:3]
  if height * width > IM2COL_MAX_PIXELS:
    return jax.lax.conv_general_dilated(x,
                                        kernel, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  columns = jnp.concatenate(
      [padded[:, i:i + height, j:j + width] for i in range(3) for j in range(3)], axis=-1)
  return columns @ kernel.reshape(-1, kernel.shape[-1])


class Conv3x3(nn.Module):
  """`nn.Conv(features, (3, 3), padding=1)`: the same parameters ('kernel' `[3, 3, C, O]`,
  'bias' `[O]` when `use_bias`), initialisers and dtype promotion, computed by `conv3x3`."""
  features: int
  use_bias: bool = True
  kernel_init: Any = nn.linear.default_kernel_init
  bias_init: Any = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init, (3, 3, x.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param('bias', self.bias_init,
                      (self.features,), self.param_dtype) if self.use_bias else None
    x, kernel, bias = dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv3x3(x, kernel)
    return y if bias is None else y + bias


class UpConv2x2(nn.Module):
  """`nn.ConvTranspose(features, (2, 2), strides=(2, 2), padding='VALID',
  transpose_kernel=True)`: `[B, h, w, C]` -> `[B, 2h, 2w, features]`,
  `y[2i + a, 2j + b] = K[a, b] @ x[i, j] + bias` with 'kernel' `[2, 2, features, C]`
  (PyTorch's layout) and 'bias' `[features]`. The strides equal the kernel, so no two
  outputs share an input: one matrix product and a depth-to-space reshape, whose gradients
  are matrix products too."""
  features: int
  kernel_init: Any = nn.linear.default_kernel_init
  bias_init: Any = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init, (2, 2, self.features, x.shape[-1]),
                        self.param_dtype)
    bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    batch, height, width, _ = x.shape
    y = jnp.einsum('nhwc,abfc->nhawbf', x, kernel)
    return _keep_batch_sharding_reshape(y, (batch, 2 * height, 2 * width, self.features)) + bias


def _keep_batch_sharding_reshape(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """`x.reshape(shape)` for a reshape that keeps the leading (batch) axis: under explicit
  sharding (a mesh with `Explicit` axes) JAX asks where the output lives, and it lives as the
  batch did."""
  sharding = jax.typeof(x).sharding
  spec = sharding.spec[0] if len(sharding.spec) else None
  return jax.lax.reshape(x, shape, out_sharding=NamedSharding(sharding.mesh, P(spec)))


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 (`nn.max_pool(x, (2, 2), strides=(2, 2))`), as the maximum
  of the four strided slices: its gradient is an elementwise select rather than XLA's
  select-and-scatter. Where a window holds equal maxima the gradient is shared among them
  (PyTorch's goes to the first); after a ReLU such ties are zeros, whose gradient the ReLU
  stops anyway. An odd last row or column is dropped, as by 'VALID' pooling."""
  height, width = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
  x = x[:, :height, :width]
  return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]),
                     jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))
