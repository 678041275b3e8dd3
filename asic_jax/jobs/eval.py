"""`mode=eval`: ASIC from the latest (or `eval.step`) checkpoint of the run in `workdir`, under
its collection's protocol, into `WORKDIR/eval/results.{json,md}`; the report refreshed."""

import logging
import pathlib

import ml_collections

from asic_jax import congeal, parallel, report, restore
from asic_jax.evaluation import protocol

log = logging.getLogger(__name__)


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Evaluates the run in `workdir`; logs the headline numbers; returns the results."""
  trained, collection, state, step = restore.restore_run(config, workdir)
  log.info('Evaluating %s at step %d', workdir, step)
  flows, _ = congeal.collection_flows(trained, state, collection)
  results = protocol.evaluate(trained, collection, flows, workdir, step=step)
  log.info('%s; %s', protocol.headline(results), pathlib.Path(workdir) / 'eval' / 'results.json')
  if parallel.is_primary():
    restore.repair_config_json(workdir, step)
    log.info('Report: %s', report.write_report(workdir))
  return results
