"""The published datasets the benchmark loaders read: where each is published, the one-line
error when one is missing from `data.root`, and their categories checked."""

import pathlib
from typing import Sequence

from asic_jax.errors import UserError

# Where each dataset is published, for the missing-dataset message.
PUBLISHED_AT = {
    'SPair-71k': 'https://cvlab.postech.ac.kr/research/SPair-71k/',
    'CUB-200-2011': 'https://www.vision.caltech.edu/datasets/cub_200_2011/',
    'PF-WILLOW': 'https://www.di.ens.fr/willow/research/proposalflow/',
    'SAMURAI': 'https://markboss.me/publication/2022-samurai/',
}


def missing_dataset(dataset: str, path: str | pathlib.Path, layout: str) -> UserError:
  """The one-line error for a dataset not found at `path` (which should hold `layout`)."""
  return UserError(f'{dataset} not found: expected {path} holding {layout}; download '
                   f'{dataset} from {PUBLISHED_AT[dataset]} and set --config.data.root to '
                   'the folder that holds it')


def require(path: pathlib.Path, dataset: str, layout: str) -> pathlib.Path:
  """`path` if it exists, else the missing-dataset error for it."""
  if not path.exists():
    raise missing_dataset(dataset, path, layout)
  return path


def check_category(dataset: str, category, valid: Sequence) -> None:
  """A readable error for a category that is not one of `valid`."""
  if category not in valid:
    raise UserError(f'{dataset} has no category {category!r}; valid: '
                    f'{", ".join(str(v) for v in valid)}')
