"""`mode=extract`: pseudo-matches, masks and parts alone (cached), and their summary in
`WORKDIR/extraction.json`."""

import json
import pathlib

import jax
import ml_collections

from asic_jax import safe_io, training_collection


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Extracts (or reads from the cache) the collection's correspondences; returns the summary
  written to `WORKDIR/extraction.json`."""
  collection = training_collection.load(config)
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
    safe_io.write_text_atomic(
        pathlib.Path(workdir) / 'extraction.json', json.dumps(summary, indent=2))
  return summary
