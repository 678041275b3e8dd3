"""The collection ready to train on: images and ground truth (`data.loaders`) with pseudo-
matches, masks and parts (`correspondences.extract`, cached), for train, eval and extract
alike; and the `extract` job.
"""

import json
import pathlib

import jax
import ml_collections
import numpy as np

from asic_jax import files
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


def extract_job(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """`config.mode='extract'`: extraction alone; writes `WORKDIR/extraction.json`."""
  collection = load(config)
  counts = (collection.matches[..., 4] > 0).sum(1)
  summary = dict(
      collection=collection.name,
      images=len(collection),
      size=collection.size,
      pairs=len(collection.pairs),
      matches_per_pair_mean=float(counts.mean()),
      matches_per_pair_min=int(counts.min()),
      matches_per_pair_max=int(counts.max()),
      foreground_fraction=float(collection.masks.mean()) if collection.masks is not None else 1.0,
      num_parts=collection.num_parts)
  if jax.process_index() == 0:  # across hosts only process 0 writes files
    files.write_text_atomic(
        pathlib.Path(workdir) / 'extraction.json', json.dumps(summary, indent=2))
  return summary
