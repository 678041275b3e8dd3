"""`mode=train`: training (`asic_jax.train`) and what it makes of its state on the way and at
the end: figures every `vis.every` steps, then the evaluation (when the collection has
keypoints), the figures, the explorer and the report."""

import logging
import pathlib

from asic_jax import congeal, explore, figures, parallel, report, train
from asic_jax.correspondences import extract
from asic_jax.evaluation import protocol
from asic_jax.logs import MetricsWriter

log = logging.getLogger(__name__)


def run(config, workdir) -> dict:
  """Trains on the collection `config.data` names, then evaluates and reports; returns the
  final metrics and `{'eval': results}` when the collection has keypoints."""
  return train.train(config, workdir, train.Hooks(check=_check, figures=_figures, finish=_finish))


def _check(config, collection) -> None:
  """Before the first step: what the end of training will need, so that a run does not fail
  after its last step. Congealing and `refine` read the backbone's descriptors: extracted (or
  read from the cache) now, which stops a run whose backbone weights are missing here."""
  if config.vis.enabled:
    figures.check_settings(config, collection)
  if config.eval.congeal_steps > 0 or config.eval.transfer == 'refine':
    extract.match_descriptors(collection, config)


def _finish(config, state, collection, workdir: pathlib.Path, writer: MetricsWriter) -> dict:
  """After the last step: the evaluation (when the collection has keypoints), the figures and
  the report; returns `{'eval': results}` or {}."""
  out = {}
  step = int(state.step)
  log.info('Flows of the %d images%s', len(collection),
           ', then the evaluation' if collection.eval_pairs is not None else '')
  flows, _ = congeal.collection_flows(config, state, collection)
  if collection.eval_pairs is not None:
    results = out['eval'] = protocol.evaluate(config, collection, flows, workdir, step=step)
    log.info('%s; %s', protocol.headline(results), workdir / 'eval' / 'results.json')
    for alpha in ('0.10', '0.05'):
      writer.scalar(f'eval/pck@{alpha}', results['pck'][alpha], step)
    for k, cycle in results['k_cycle'].items():
      writer.scalar(f'eval/{k}-cypck@0.10', cycle['pck']['0.10'], step)
  if config.vis.enabled:
    log.info('Figures into %s', workdir / 'figures')
    _figures(config, state, collection, workdir, writer, step, flows=flows)
  if parallel.is_primary():
    if config.vis.enabled:
      log.info('Explorer: %s', explore.write_for_run(config, collection, state, step, flows,
                                                     workdir))
    log.info('Report: %s', report.write_report(workdir))
  return out


def _figures(config,
             state,
             collection,
             workdir: pathlib.Path,
             writer: MetricsWriter,
             step: int,
             flows=None) -> None:
  """Figures of the current state into `WORKDIR/figures/` and TensorBoard (process 0)."""
  found = figures.draw(config, state, collection, flows)
  if parallel.is_primary():
    figures.save(found, workdir / 'figures')
    writer.figures(found, step)
