"""One 3 x 3 'same' convolution, forward and both gradients, at the `cpu` shape's U-Net sizes:
XLA's convolution (as the train step compiles it, and as YNNPACK runs it by default) against two
matrix-product forms of it, or PyTorch's (oneDNN) for comparison.

  python -m benchmarks.conv_forms                 # XLA, YNNPACK, im2col, output shifts
  XLA_FLAGS=--xla_cpu_use_onednn=true python -m benchmarks.conv_forms --forms=xla  # an XLA:CPU flag
  $ASIC_RELEASED_PYTHON -m benchmarks.conv_forms --forms=torch      # PyTorch (no jax needed)

Each row is one shape (batch 16 = the `cpu` shape's 8 images through both U-Net passes; the
output channels are the input's or half: the up blocks' first convolution), median ms of 5
calls after one warm-up. `xla`: compiled with `asic_jax.parallel.compiler_options()` (XLA's own
multi-threaded convolution on a CPU); `ynnpack`: jaxlib's default compilation, which hands the
convolution to YNNPACK (one thread). `im2col`: the nine shifted copies side by side, one matrix
product (what `asic_jax.models.layers.conv3x3` does for small maps). `shifts`: one matrix
product to nine times the output channels, then nine shifted sums. The figures in
BENCHMARKS.md ("Where the CPU step went") come from this script.
"""

import argparse
import statistics
import time

import numpy as np

# (batch, side, in channels, out channels): the U-Net of the `cpu` shape (widths 16 ... 256).
SHAPES = ((16, 128, 32, 16), (16, 128, 16, 16), (16, 64, 64, 32), (16, 64, 32, 32),
          (16, 32, 128, 64), (16, 32, 64, 64), (16, 16, 256, 128), (16, 16, 128, 128))


def _median_ms(call, repeats: int = 5) -> float:
  call()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return 1000 * statistics.median(times)


def jax_forms(names):
  """{name: conv(x [B, H, W, C], kernel [3, 3, C, O])} of the JAX forms asked for."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  def xla(x, w):
    return jax.lax.conv_general_dilated(x,
                                        w, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def im2col(x, w):
    h, wd = x.shape[1:3]
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    columns = jnp.concatenate([p[:, i:i + h, j:j + wd] for i in range(3) for j in range(3)], -1)
    return columns @ w.reshape(-1, w.shape[-1])

  def shifts(x, w):
    h, wd = x.shape[1:3]
    out_channels = w.shape[-1]
    z = x @ jnp.transpose(w, (2, 0, 1, 3)).reshape(w.shape[2], 9 * out_channels)
    z = jnp.pad(z, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(z[:, i:i + h, j:j + wd, (3 * i + j) * out_channels:(3 * i + j + 1) * out_channels]
               for i in range(3)
               for j in range(3))

  every = dict(xla=xla, ynnpack=xla, im2col=im2col, shifts=shifts)
  return {n: every[n] for n in names}


def time_jax(names) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from asic_jax import parallel  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  forms = jax_forms(names)
  out = {}
  for shape in SHAPES:
    batch, side, cin, cout = shape
    x = jnp.asarray(rng.normal(size=(batch, side, side, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, cin, cout)) * 0.01, jnp.float32)
    for name, conv in forms.items():
      # As the train step compiles (`parallel.compiler_options`); `ynnpack`: jaxlib's default.
      step = jax.jit(jax.grad(lambda w, x, conv=conv: jnp.sum(jnp.square(conv(x, w))),
                              argnums=(0, 1)),
                     compiler_options=None if name == 'ynnpack' else parallel.compiler_options())
      out[(shape, name)] = _median_ms(lambda step=step: jax.block_until_ready(step(w, x)))
  return out


def time_torch() -> dict:
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(2)
  out = {}
  for shape in SHAPES:
    batch, side, cin, cout = shape
    x = torch.randn(batch, cin, side, side, requires_grad=True)
    w = (torch.randn(cout, cin, 3, 3) * 0.01).requires_grad_()

    def step():
      torch.nn.functional.conv2d(x, w, padding=1).square().sum().backward()

    out[(shape, 'torch')] = _median_ms(step)
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--forms',
                      default='xla,ynnpack,im2col,shifts',
                      help='xla, ynnpack, im2col, shifts | torch')
  args = parser.parse_args(argv)
  names = args.forms.split(',')
  found = time_torch() if names == ['torch'] else time_jax(names)
  print('| batch x side, channels | ' + ' | '.join(f'{n} ms (GFLOP/s)' for n in names) + ' |')
  print('|---|' + '---|' * len(names))
  for shape in SHAPES:
    batch, side, cin, cout = shape
    flops = 3 * 2 * batch * side * side * 9 * cin * cout  # forward, input and kernel gradients
    cells = [f'{found[(shape, n)]:.1f} ({flops / found[(shape, n)] / 1e6:.0f})' for n in names]
    print(f'| {batch} x {side}², {cin} -> {cout} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  main()
