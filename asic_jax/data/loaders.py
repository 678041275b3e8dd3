"""`load(config)`: the collection `config.data.name` names."""

import functools
import json

import ml_collections

from asic_jax.data import collection as collection_lib
from asic_jax.data import synthetic
from asic_jax.errors import UserError

DATASETS = ('synthetic',)


def load(config: ml_collections.ConfigDict) -> collection_lib.Collection:
  """Loads (and, for real photos, later extracts correspondences for) a collection."""
  name = config.data.name
  if name == 'synthetic':
    return _synthetic(config.data.synthetic.to_json(), config.data.img_size, config.parts.num_parts,
                      config.seed, config.data.path or None)
  raise UserError(f'config.data.name must be one of {DATASETS}, got {name!r}')


@functools.lru_cache(maxsize=4)
def _synthetic(settings: str, size: int, num_parts: int, seed: int, source: str | None):
  # Memoised: the same collection is asked for by train, eval and visualize in
  # one process (and by many tests); it is deterministic in its arguments.
  return synthetic.make_synthetic(ml_collections.ConfigDict(json.loads(settings)),
                                  size=size,
                                  num_parts=num_parts,
                                  seed=seed,
                                  source=source)
