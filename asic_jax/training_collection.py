"""The collection ready to train on: images and ground truth (`data.loaders`) with pseudo-
matches, masks and parts (`correspondences.extract`, cached), for train, eval and extract
alike.
"""

import jax
import ml_collections
import numpy as np

from asic_jax.correspondences import cache as cache_lib
from asic_jax.correspondences import extract
from asic_jax.data import collection as collection_lib
from asic_jax.data import loaders
from asic_jax.errors import UserError


def load(config: ml_collections.ConfigDict) -> collection_lib.Collection:
  """`load_collection` with pseudo-matches, masks and parts: from DINO for real photos
  (`correspondences.extract`, cached), the synthetic collection's own exact ones.

  Across hosts every process builds the collection (a shared `features.cache_dir` lets all
  but the first read it from the cache), and all must hold the same one: the step assumes
  it. If they do not (GPU non-determinism in extraction, different files), every process
  stops with one error rather than training on data that quietly disagrees.
  """
  collection = loaders.load_collection(config)
  if collection.pairs is None:
    collection = extract.add_correspondences(collection, config)
  if jax.process_count() > 1:
    _check_same_on_every_process(collection)
  return collection


def _check_same_on_every_process(collection: collection_lib.Collection) -> None:
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  arrays = [
      x for x in (collection.images, collection.pairs, collection.matches, collection.masks,
                  collection.parts) if x is not None
  ]
  digest = np.frombuffer(bytes.fromhex(cache_lib.digest_arrays(arrays)), np.uint8)
  every = np.asarray(multihost_utils.process_allgather(digest))
  differ = [i for i in range(len(every)) if not np.array_equal(every[i], every[0])]
  if differ:
    raise UserError(f'processes {differ} built a different collection (images, pseudo-matches, '
                    'masks or parts) than process 0; run config.mode=extract once with '
                    'config.features.cache_dir on a folder every host reads, then train')
