"""CUB-200-2011, one of the paper's three bird classes (paper defaults; `released` too).

  python -m asic_jax.main --config=configs/cub.py:1 --workdir=runs/cub_001
  python -m asic_jax.main --config=configs/cub.py:2,released --workdir=runs/cub_002_rel

The arg is the class id 1, 2 or 3 (default 1). Data: `<data.root>/CUB_200_2011/`
(https://www.vision.caltech.edu/datasets/cub_200_2011/) with ACSM's
`cachedir/cub/data/test_cub_cleaned.mat` for the paper's image lists; without
it CUB's own test split is used and a warning says PCK is not comparable.
"""

from asic_jax import config_lib
from asic_jax.data import cub


def get_config(arg: str = ''):
  # eval.threshold '' keeps the dataset's protocol (img); or bbox | img | kp_bbox.
  return config_lib.benchmark_config(arg,
                                     config_file='configs/cub.py',
                                     data_name='cub',
                                     dataset='CUB-200-2011',
                                     categories=cub.CATEGORIES,
                                     default=1,
                                     label='class')


def sweep(add, arg: str = ''):
  """Every category (`:ablation`: x the loss ablation; `:presets`: x both presets)."""
  config_lib.category_sweep(add, arg, cub.CATEGORIES)
