"""Paper defaults (ASIC, Gupta et al. 2023) on the synthetic collection.

  python -m asic_jax.main --config=configs/base.py --workdir=runs/base
  python -m asic_jax.main --config=configs/base.py:released --workdir=runs/base_released

`released` switches to the defaults of the authors' released PyTorch code.
"""

from asic_jax import config_lib


def get_config(arg: str = ''):
  config_lib.no_words(arg, 'configs/base.py')
  return config_lib.base_config(arg)
