"""Train-step timing: ms/step (median after compile), compile time and peak memory.

  python -m benchmarks.train_step                       # tiny and released shapes
  python -m benchmarks.train_step --shapes=tiny,released,full --out=benchmarks/results/train_step.json

Shapes (the step is the real one: both forward passes, TPS, jitter, every loss term):
  tiny      configs/tiny.py (32 px, widths 8..128, batch 4)
  cpu       the `cpu` config word: batch 8, 128 px, recon 32, grid 128, widths 16..256, 10
            images, 300 matches per pair
  released  batch 4, 128 px, recon 64, grid 128, widths 32..512, 10 images, 300 matches per
            pair
  full      the paper's shape: batch 20, 256 px, recon 128, grid 256, widths 32..512
The released PyTorch code's step at `cpu` and `released` is timed by `benchmarks.released_step`
(its own virtualenv); `run_all` puts both side by side.
"""

import argparse
import time

import jax

from asic_jax import config_lib, objective, optim, parallel, train
from asic_jax import train_state
from asic_jax.data import synthetic
from asic_jax.models import asic, perceptual
from benchmarks import common


def shape_config(name: str, dtype: str):
  """The config of a named shape: tiny | cpu | released | full, or released with one change:
  `batch=B`, `img=S` (recon S/2, grid S), or `images=N` (64 px, batch 8; k-NN pairs with
  k = 10 from N = 100 on)."""
  c = config_lib.base_config('')
  c.dtype = dtype
  key, _, value = name.partition('=')
  if name == 'tiny':
    c.data.img_size, c.train.batch_size, c.model.channel_multiplier = 32, 4, 0.125
    c.model.grid_size, c.loss.recon_size, c.parts.num_parts = 32, 16, 4
    c.data.synthetic.num_images, c.data.synthetic.matches_per_pair = 6, 32
  elif name == 'cpu':
    c = config_lib.base_config('cpu')
    c.dtype = dtype
    c.data.synthetic.num_images, c.data.synthetic.matches_per_pair = 10, 300
  elif name == 'full':
    c.data.synthetic.num_images, c.data.synthetic.matches_per_pair = 20, 300
  elif name == 'released' or key in ('batch', 'img', 'images'):
    c.data.img_size, c.train.batch_size, c.model.grid_size, c.loss.recon_size = 128, 4, 128, 64
    c.data.synthetic.num_images, c.data.synthetic.matches_per_pair = 10, 300
    if key == 'batch':
      c.train.batch_size = int(value)
    elif key == 'img':
      c.data.img_size = c.model.grid_size = int(value)
      c.loss.recon_size = int(value) // 2
    elif key == 'images':
      c.data.img_size, c.model.grid_size, c.loss.recon_size, c.train.batch_size = 64, 64, 32, 8
      c.data.synthetic.num_images, c.data.synthetic.matches_per_pair = int(value), 64
      c.pairs.max_per_image = 10 if int(value) >= 100 else 0
  else:
    raise ValueError(f'unknown shape {name!r}')
  return c


def compiled_step(name: str, dtype: str):
  """The shape's config, collection, compiled step, compile seconds and `call()` (one step on
  a state it keeps, returning the metrics)."""
  config = shape_config(name, dtype)
  collection = synthetic.make_synthetic(config.data.synthetic,
                                        size=config.data.img_size,
                                        num_parts=config.parts.num_parts,
                                        seed=0,
                                        max_per_image=config.pairs.max_per_image)
  dp = parallel.DataParallel(config.parallel)
  perceptual_fn, frozen = perceptual.load_perceptual(config.loss.perceptual,
                                                     config.loss.perceptual_weights)
  loss = objective.Objective(model=asic.make_model(config, bn_axis_name=parallel.AXIS),
                             config=config,
                             num_devices=dp.num_devices,
                             perceptual=perceptual_fn)
  tx = optim.make_optimizer(config)
  step = dp.wrap(train.make_step(loss, tx, optim.learning_rate(config), 0), donate_argnums=(0,))
  state = dp.replicate(train_state.init_state(config, tx, config.data.img_size))
  data, frozen = dp.replicate(train.device_data(collection,
                                                config.parts.num_parts)), dp.replicate(frozen)

  start = time.perf_counter()
  compiled = step.lower(state, data, frozen).compile()
  compile_s = time.perf_counter() - start
  holder = {'state': state}

  def call():
    holder['state'], metrics = compiled(holder['state'], data, frozen)
    return metrics

  return config, collection, compiled, compile_s, call


def bench(name: str, *, dtype: str, steps: int) -> dict:
  config, collection, compiled, compile_s, call = compiled_step(name, dtype)
  jax.block_until_ready(call())  # warm-up
  times = common.time_calls(call, steps)
  ms = common.median_ms(times)
  record = dict(shape=name,
                dtype=dtype,
                batch=config.train.batch_size,
                img=config.data.img_size,
                recon=config.loss.recon_size,
                grid=config.model.grid_size,
                widths=f'{int(64 * config.model.channel_multiplier)}..'
                f'{int(1024 * config.model.channel_multiplier)}',
                images=len(collection),
                pairs=len(collection.pairs),
                matches=collection.matches.shape[1],
                steps=steps,
                ms_per_step=ms,
                steps_per_s=1000 / ms,
                compile_s=compile_s,
                xla_memory_gb=common.compiled_memory_gb(compiled),
                device_peak_gb=common.device_peak_gb(),
                peak_rss_gb=common.peak_rss_gb())
  return record


COLUMNS = [('shape', 'shape'), ('dtype', 'dtype'), ('batch', 'batch'), ('img', 'px'),
           ('recon', 'recon'), ('grid', 'grid'), ('widths', 'U-Net widths'), ('images', 'N'),
           ('pairs', 'pairs'), ('matches', 'matches/pair'), ('ms_per_step', 'ms/step'),
           ('steps_per_s', 'steps/s'), ('compile_s', 'compile s'),
           ('xla_memory_gb', 'XLA memory GB'), ('device_peak_gb', 'device peak GB'),
           ('peak_rss_gb', 'process peak RSS GB')]


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--shapes',
                      default='tiny,released',
                      help='comma list: tiny, cpu, released, full, batch=B, img=S, images=N')
  parser.add_argument('--dtypes', default='float32')
  parser.add_argument('--steps', type=int, default=10, help='timed steps per shape')
  parser.add_argument('--out', default=None, help='JSON file for the records')
  args = parser.parse_args(argv)
  return common.report((bench(name, dtype=dtype, steps=args.steps)
                        for name in args.shapes.split(',')
                        for dtype in args.dtypes.split(',')), COLUMNS, args.out)


if __name__ == '__main__':
  main()
