"""`mode=baseline`: `baseline.method` over `features.backbone` (no checkpoint) under ASIC's own
protocol, into `WORKDIR/eval/baseline_<backbone>_<method>.{json,md}`."""

import logging

import ml_collections

from asic_jax.correspondences import extract
from asic_jax.data import loaders
from asic_jax.evaluation import baselines, protocol

log = logging.getLogger(__name__)


def run(config: ml_collections.ConfigDict, workdir) -> dict:
  """Scores the baseline on the collection `config.data` names; returns the results."""
  collection = loaders.load_collection(config)  # no pseudo-matches: the baselines need none
  if config.features.orient:  # the orientation ASIC's run took (from the extraction cache)
    collection = collection.replace(
        flipped=extract.add_correspondences(collection, config).flipped)
  results = baselines.evaluate(config, collection)
  label = baselines.label(config)
  path = protocol.write(workdir, f'baseline_{results["method"]}', results, label)
  log.info('%s; %s', protocol.headline(results, label), path)
  return results
