"""PF-WILLOW, one category (paper defaults; `released` for the released code's).

  python -m asic_jax.main --config=configs/pfwillow.py:car --workdir=runs/pfwillow_car
  python -m asic_jax.main --config=configs/pfwillow.py:duck,released --workdir=runs/pfw_duck_rel

The arg is car, duck, motorbike or winebottle (default car). Data:
`<data.root>/PF-dataset-WILLOW/` (https://www.di.ens.fr/willow/research/proposalflow/).
PCK is scored on all ordered pairs within each sub-folder, kp_bbox threshold.
"""

from asic_jax import config_lib
from asic_jax.data import pfwillow


def get_config(arg: str = ''):
  # eval.threshold '' keeps the dataset's protocol (kp_bbox); or bbox | img | kp_bbox.
  return config_lib.benchmark_config(arg,
                                     config_file='configs/pfwillow.py',
                                     data_name='pfwillow',
                                     dataset='PF-WILLOW',
                                     categories=pfwillow.CATEGORIES,
                                     default='car')


def sweep(add, arg: str = ''):
  """Every category (`:ablation`: x the loss ablation; `:presets`: x both presets)."""
  config_lib.category_sweep(add, arg, pfwillow.CATEGORIES)
