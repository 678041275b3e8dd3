"""PF-WILLOW, one category (paper defaults; `released` for the released code's).

  python -m asic_jax.main --config=configs/pfwillow.py:car --workdir=runs/pfwillow_car
  python -m asic_jax.main --config=configs/pfwillow.py:duck,released --workdir=runs/pfw_duck_rel

The arg is car, duck, motorbike or winebottle (default car). Data:
`<data.root>/PF-dataset-WILLOW/` (https://www.di.ens.fr/willow/research/proposalflow/).
PCK is scored on all ordered pairs within each sub-folder, kp_bbox threshold.
"""

from asic_jax import config_lib
from asic_jax.data import pfwillow
from asic_jax.errors import UserError


def get_config(arg: str = ''):
  c = config_lib.base_config(arg)
  words, _ = config_lib.parse_arg(arg)
  if len(words) > 1:
    raise UserError(f'configs/pfwillow.py takes one category, got {words}')
  category = words[0] if words else 'car'
  if category not in pfwillow.CATEGORIES:
    raise UserError(f'unknown PF-WILLOW category {category!r}; valid: '
                    f'{", ".join(pfwillow.CATEGORIES)}')
  c.data.name = 'pfwillow'
  c.data.category = category
  # eval.threshold '' keeps the dataset's protocol (kp_bbox); or bbox | img | kp_bbox.
  return c


def sweep(add, arg: str = ''):
  """Every category (`:ablation`: x the loss ablation; `:presets`: x both presets)."""
  config_lib.category_sweep(add, arg, pfwillow.CATEGORIES)
