"""SPair-71k, one category (paper defaults; `released` for the released code's).

  python -m asic_jax.main --config=configs/spair.py:cat --workdir=runs/spair_cat
  python -m asic_jax.main --config=configs/spair.py:cat,released --workdir=runs/spair_cat_rel

The arg is a category of `asic_jax.data.spair.CATEGORIES` (default cat). Data:
`<data.root>/SPair-71k/` (https://cvlab.postech.ac.kr/research/SPair-71k/).
PCK is scored on the category's official test pairs with the bbox threshold.
"""

from asic_jax import config_lib
from asic_jax.data import spair


def get_config(arg: str = ''):
  # eval.threshold '' keeps the dataset's protocol (bbox); or bbox | img | kp_bbox.
  return config_lib.benchmark_config(arg,
                                     config_file='configs/spair.py',
                                     data_name='spair',
                                     dataset='SPair-71k',
                                     categories=spair.CATEGORIES,
                                     default='cat')


def sweep(add, arg: str = ''):
  """Every category (`:ablation`: x the loss ablation; `:presets`: x both presets)."""
  config_lib.category_sweep(add, arg, spair.CATEGORIES)
