"""Training: state, the jitted data-parallel step, the loop and its cadence.

`train_and_evaluate(config, workdir)` reads top to bottom: the collection, the
devices, the model and optimizer, restore-or-init, the compiled step, the loop
(metrics at `train.log_every`, checkpoints at `checkpoint.every` and at the
end), and an evaluation when the collection has keypoints.
"""

import json
import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

import tensorboardX

from asic_jax import (checkpoint, eval_run, files, objective, optim, parallel, report, visualize)
from asic_jax import state as state_lib
from asic_jax.data import loaders
from asic_jax.errors import NonFiniteError, UserError
from asic_jax.models import perceptual
from asic_jax.state import TrainState, init_state, make_model

log = logging.getLogger(__name__)


def make_step(loss: objective.Objective, tx: optax.GradientTransformation, schedule: optax.Schedule,
              seed: int):
  """The per-device train step `(state, data, frozen) -> (state, metrics)`."""
  root = jax.random.key(seed)

  def step(state: TrainState, data: dict, frozen: Any):
    key = jax.random.fold_in(root, state.step)
    (total, (terms, batch_stats)), grads = jax.value_and_grad(loss, has_aux=True)(state.params,
                                                                                  state.batch_stats,
                                                                                  data, frozen, key)
    grads = jax.lax.pmean(grads, parallel.AXIS)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    bad_term = objective.first_nonfinite(terms, grad_norm)
    ok = (bad_term < 0) & (state.bad_step < 0)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    first_bad = (bad_term >= 0) & (state.bad_step < 0)
    new_state = TrainState(step=state.step + 1,
                           params=keep(params, state.params),
                           batch_stats=keep(batch_stats, state.batch_stats),
                           opt_state=keep(opt_state, state.opt_state),
                           bad_step=jnp.where(first_bad, state.step + 1, state.bad_step),
                           bad_term=jnp.where(first_bad, bad_term, state.bad_term))
    metrics = dict(terms, total=total, grad_norm=grad_norm, lr=schedule(state.step))
    return new_state, metrics

  return step


def device_data(collection, num_parts: int) -> dict[str, np.ndarray]:
  """The arrays the step reads, kept on the devices for the whole run."""
  if collection.pairs is None or len(collection.pairs) == 0:
    raise UserError(f'{collection.name}: no image pair has pseudo-matches; nothing to train on')
  n, s = len(collection), collection.size
  masks = collection.masks if collection.masks is not None else np.ones((n, s, s), np.float32)
  # Without parts every pixel is background (label num_parts): the Parts loss sees nothing.
  parts = collection.parts if collection.parts is not None else np.full(
      (n, s, s), num_parts, np.int32)
  return dict(images=collection.images,
              masks=masks.astype(np.float32),
              parts=parts.astype(np.int32),
              pairs=collection.pairs.astype(np.int32),
              matches=collection.matches.astype(np.float32))


class MetricsLog:
  """`WORKDIR/metrics.jsonl`: one JSON object per logged step."""

  def __init__(self, workdir: pathlib.Path):
    self.path = workdir / 'metrics.jsonl'

  def write(self, record: dict) -> None:
    with self.path.open('a') as f:
      f.write(json.dumps(record) + '\n')

  def truncate(self, step: int) -> None:
    """Drops records after `step`: a run resumed from an earlier checkpoint logs them again.
    A line a killed run left half-written is dropped too; the file is replaced atomically."""
    if self.path.exists():
      kept = [line for line in self.path.read_text().splitlines() if _step_of(line) <= step]
      files.write_text_atomic(self.path, ''.join(line + '\n' for line in kept))


def _step_of(line: str) -> float:
  """The step of a metrics line; infinity for one that does not parse (dropped)."""
  try:
    return json.loads(line)['step']
  except (ValueError, KeyError, TypeError):
    return float('inf')


def _check_finite(state: TrainState, checkpointer: checkpoint.Checkpointer) -> None:
  bad_step = int(state.bad_step)
  if bad_step >= 0:
    checkpointer.wait()
    last = checkpointer.latest_step()
    kept = f'the last checkpoint (step {last}) is intact' if last is not None else (
        'no checkpoint had been saved')
    term = objective.FLAGGED[int(state.bad_term)]
    what = 'gradient' if term == 'gradient' else f'{term} loss'
    raise NonFiniteError(f'non-finite {what} at step {bad_step}; stopped, {kept}')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains on the collection `config.data` names; returns the final metrics (and PCK)."""
  workdir = pathlib.Path(workdir)
  primary = parallel.is_primary()  # across hosts only process 0 writes files

  # Collection, devices and the perceptual weights (a bad dataset, figure setting or weights
  # file stops here, with nothing written).
  collection = loaders.load(config)
  if config.vis.enabled:
    visualize.check_settings(config, collection)
  dp = parallel.DataParallel(config.parallel)
  dp.check_divisible(config.train.batch_size // 2)
  perceptual_fn, frozen = None, {}
  if config.loss.recon:
    try:
      perceptual_fn, frozen = perceptual.load_perceptual(config.loss.perceptual,
                                                         config.loss.perceptual_weights)
    except (OSError, ValueError) as e:
      raise UserError(f'config.loss.perceptual_weights: {e}') from e
  if primary:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'config.json').write_text(config.to_json(indent=2))
  data = device_data(collection, config.parts.num_parts)

  # Model, loss and optimizer.
  model = make_model(config)
  loss = objective.Objective(model=model,
                             config=config,
                             num_devices=dp.num_devices,
                             perceptual=perceptual_fn)
  schedule = optim.learning_rate(config)
  tx = optim.make_optimizer(config)

  # Restore or init.
  checkpointer = checkpoint.Checkpointer(workdir, keep=config.checkpoint.keep)
  state = init_state(config, tx, collection.size)
  if checkpointer.latest_step() is not None:
    restored, state = checkpointer.restore(dp.abstract(state))
    log.info('Resumed from %s at step %d', checkpointer.directory, restored)
    if dp.mode == 'pmap':
      state = dp.replicate(state)
  else:
    state = dp.replicate(state)
  data, frozen = dp.replicate(data), dp.replicate(frozen)

  # The compiled step and the loop.
  step_fn = dp.wrap(make_step(loss, tx, schedule, config.seed), donate_argnums=(0,))
  begin = time.perf_counter()
  num_steps = config.train.num_steps
  start = int(dp.local(state).step)
  metrics_log = writer = None
  if primary:
    metrics_log = MetricsLog(workdir)
    metrics_log.truncate(start)
    # purge_step: TensorBoard hides events after `start` left by an interrupted run.
    writer = tensorboardX.SummaryWriter(str(workdir / 'tensorboard'), purge_step=start + 1)
  metrics = {}
  progress = tqdm(range(start, num_steps),
                  initial=start,
                  total=num_steps,
                  desc='train',
                  dynamic_ncols=True,
                  disable=None if primary else True)
  try:
    for i in progress:
      state, metrics = step_fn(state, data, frozen)
      step = i + 1
      if i == start:
        # The first step compiles; steps_per_s counts from its end.
        jax.block_until_ready(state)
        last_time, last_step = time.perf_counter(), step
        log.info('First step (compilation included) took %.1f s', last_time - begin)
      if step % config.train.log_every == 0 or step == num_steps:
        host = jax.device_get(dp.local((state.bad_step, state.bad_term, metrics)))
        _check_finite(TrainState(0, None, None, None, *host[:2]), checkpointer)
        now = time.perf_counter()
        record = {k: float(v) for k, v in host[2].items()}
        record['step'] = step
        if step > last_step:
          record['steps_per_s'] = (step - last_step) / max(now - last_time, 1e-9)
          last_time, last_step = now, step
        if primary:
          metrics_log.write(record)
          for name, value in record.items():
            if name != 'step':
              writer.add_scalar(f'train/{name}', value, step)
        progress.set_postfix(total=f"{record['total']:.4f}", refresh=False)
      if step % config.checkpoint.every == 0 or step == num_steps:
        _check_finite(
            jax.device_get(dp.local(state.replace(params=None, batch_stats=None, opt_state=None))),
            checkpointer)
        checkpointer.save(step, dp.unreplicate(state), config)
      if config.vis.enabled and config.vis.every and step % config.vis.every == 0 and (step
                                                                                       < num_steps):
        _figures(config, dp.local(state), collection, workdir, writer, step)
  finally:  # an exception or Ctrl-C still lets a started save finish
    progress.close()
    checkpointer.close()

  result = {k: float(v) for k, v in jax.device_get(dp.local(metrics)).items()}
  final = dp.local(state)
  flows = state_lib.collection_flows(config, final, collection.images)
  if collection.eval_pairs is not None:
    result['eval'] = eval_run.evaluate_state(config,
                                             final,
                                             collection,
                                             workdir,
                                             step=int(final.step),
                                             flows=flows)
    log.info('PCK@0.10 %.4f, PCK@0.05 %.4f (%s thresholds, %d pairs); eval/results.json',
             result['eval']['pck']['0.10'], result['eval']['pck']['0.05'],
             collection.threshold_kind, result['eval']['num_pairs'])
    if primary:
      for alpha in ('0.10', '0.05'):
        writer.add_scalar(f'eval/pck@{alpha}', result['eval']['pck'][alpha], num_steps)
      for k, cycle in result['eval']['k_cycle'].items():
        writer.add_scalar(f'eval/{k}-cypck@0.10', cycle['pck']['0.10'], num_steps)
  if config.vis.enabled:
    _figures(config, final, collection, workdir, writer, num_steps, flows=flows)
  if primary:
    writer.close()
    log.info('Report: %s', report.write_report(workdir))
  return result


def _figures(config,
             state,
             collection,
             workdir: pathlib.Path,
             writer,
             step: int,
             flows=None) -> None:
  """Figures of the current state into `WORKDIR/figures/` and TensorBoard (process 0)."""
  figures = visualize.figures(config, state, collection, flows)
  if parallel.is_primary():
    visualize.save(figures, workdir / 'figures')
    visualize.log_figures(writer, figures, step)
