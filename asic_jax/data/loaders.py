"""`load(config)`: the collection `config.data.name` names."""

import ml_collections

from asic_jax.data import collection as collection_lib
from asic_jax.data import synthetic
from asic_jax.errors import UserError

DATASETS = ('synthetic',)


def load(config: ml_collections.ConfigDict) -> collection_lib.Collection:
  """Loads (and, for real photos, later extracts correspondences for) a collection."""
  name = config.data.name
  if name == 'synthetic':
    return synthetic.make_synthetic(config.data.synthetic, size=config.data.img_size,
                                    num_parts=config.parts.num_parts, seed=config.seed,
                                    source=config.data.path or None)
  raise UserError(f'config.data.name must be one of {DATASETS}, got {name!r}')
