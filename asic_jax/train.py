"""Training: state, the jitted data-parallel step, the loop and its cadence.

`train_and_evaluate(config, workdir)` reads top to bottom: the collection, the
devices, the model and optimizer, restore-or-init, the compiled step, the loop
(metrics at `train.log_every`, checkpoints at `checkpoint.every` and at the
end), then `_finish`: an evaluation when the collection has keypoints, the
figures and the report.
"""

import contextlib
import json
import logging
import pathlib
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm
from tqdm.contrib import logging as tqdm_logging

import tensorboardX

from asic_jax import (checkpoint, config_lib, eval_run, explore, files, inference, objective, optim,
                      parallel, prepare, report, visualize)
from asic_jax import state as state_lib
from asic_jax.errors import Interrupted, NonFiniteError, UserError
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
  # Without parts every pixel is background (label num_parts): the Parts loss sees nothing.
  parts = collection.parts if collection.parts is not None else np.full(
      collection.images.shape[:3], num_parts, np.int32)
  flipped = collection.flipped if collection.flipped is not None else np.zeros(
      len(collection), bool)
  return dict(images=collection.images,
              flipped=np.asarray(flipped, bool),
              masks=collection.masks_or_ones(),
              parts=parts.astype(np.int32),
              pairs=collection.pairs.astype(np.int32),
              matches=collection.matches.astype(np.float32))


class MetricsWriter:
  """One run's logs: `WORKDIR/metrics.jsonl` (one JSON object per logged step) and the same
  scalars and every figure as TensorBoard events. On resume, records after the restored step
  (and a line a killed run left half-written) are dropped, and TensorBoard hides its events
  after it. Only process 0 writes (`primary`); on the others every method does nothing.
  """

  def __init__(self, workdir: pathlib.Path, start: int, *, primary: bool = True):
    self.path = workdir / 'metrics.jsonl'
    self._writer = None
    if primary:
      self.truncate(start)
      # purge_step: TensorBoard hides events after `start` left by an interrupted run.
      self._writer = tensorboardX.SummaryWriter(str(workdir / 'tensorboard'),
                                                purge_step=start + 1)

  def write(self, record: dict) -> None:
    """Appends `record` (with its 'step') to metrics.jsonl, its scalars under train/."""
    if self._writer is None:
      return
    with self.path.open('a') as f:
      f.write(json.dumps(record) + '\n')
    for name, value in record.items():
      if name != 'step':
        self._writer.add_scalar(f'train/{name}', value, record['step'])

  def scalar(self, name: str, value: float, step: int) -> None:
    if self._writer is not None:
      self._writer.add_scalar(name, value, step)

  def figures(self, figures: visualize.Figures, step: int) -> None:
    if self._writer is not None:
      visualize.log_figures(self._writer, figures, step)

  def truncate(self, step: int) -> None:
    """Drops records after `step`: a run resumed from an earlier checkpoint logs them again.
    A line a killed run left half-written is dropped too; the file is replaced atomically."""
    if self.path.exists():
      kept = [line for line in self.path.read_text().splitlines() if _step_of(line) <= step]
      files.write_text_atomic(self.path, ''.join(line + '\n' for line in kept))

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def _step_of(line: str) -> float:
  """The step of a metrics line; infinity for one that does not parse (dropped)."""
  try:
    return json.loads(line)['step']
  except (ValueError, KeyError, TypeError):
    return float('inf')


def _check_finite(bad_step: int, bad_term: int, checkpointer: checkpoint.Checkpointer) -> None:
  """Stops the run at the first non-finite loss term (or gradient) the step flagged."""
  if bad_step >= 0:
    checkpointer.wait()
    last = checkpointer.latest_step()
    kept = f'the last checkpoint (step {last}) is intact' if last is not None else (
        'no checkpoint had been saved')
    term = objective.FLAGGED[bad_term]
    what = 'gradient' if term == 'gradient' else f'{term} loss'
    raise NonFiniteError(f'non-finite {what} at step {bad_step}; stopped, {kept}')


def check_same_run(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """A workdir whose checkpoints come from another config (another collection, model or
  loss) is refused, naming what differs, rather than resumed into a shape error or, worse,
  a model silently relabelled as trained on other photos."""
  if not (workdir / 'checkpoints').is_dir():
    return
  checkpointer = checkpoint.Checkpointer(workdir, read_only=True)
  step = checkpointer.latest_step()
  if step is None:
    return
  try:
    saved = checkpointer.restore_config(step)
  except Exception:  # pylint: disable=broad-except  # restore_latest names a damaged checkpoint
    return
  changed = config_lib.changed_settings(saved, config)
  if changed:
    shown = '; '.join(changed[:3]) + (f'; and {len(changed) - 3} more' if len(changed) > 3 else '')
    raise UserError(f'{workdir} holds another run (config {config_lib.config_hash(saved)} at step '
                    f'{step}; this one is {config_lib.config_hash(config)}): {shown}. Give '
                    f'another --workdir (with --config.train.init_from={workdir} to start from '
                    'its weights)')


def warm_start_source(config: ml_collections.ConfigDict):
  """`train.init_from` checked before anything runs: `(its Checkpointer, its config)`, or None
  without one. A folder without checkpoints, or a model of another shape, is one line."""
  if not config.train.init_from:
    return None
  source = pathlib.Path(config.train.init_from)
  what = f'config.train.init_from={source}'
  checkpointer = checkpoint.Checkpointer(source, read_only=True) if (
      source / 'checkpoints').is_dir() else None
  if checkpointer is None or not checkpointer.all_steps():
    raise UserError(f'{what}: no checkpoint there (expected a trained run\'s workdir)')
  theirs = checkpointer.restore_config()
  differ = [
      f'{key} {config_lib.get(theirs, key)!r} there, {config_lib.get(config, key)!r} here'
      for key in ('model.channel_multiplier', 'model.grid_size')
      if config_lib.get(theirs, key) != config_lib.get(config, key)
  ]
  if differ:
    raise UserError(f'{what}: its model differs from this run\'s ({"; ".join(differ)})')
  return checkpointer, theirs


def warm_start(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
               image_size: int, source) -> TrainState:
  """A fresh state with the weights of the run `warm_start_source` found (its newest
  checkpoint that reads): U-Net, canonical grid and BatchNorm statistics; step 0, a fresh
  optimizer."""
  checkpointer, theirs = source
  abstract = parallel.on_one_device(
      state_lib.abstract_state(theirs, optim.make_optimizer(theirs), theirs.data.img_size))
  found = checkpointer.restore_latest(abstract)
  if found is None:
    raise UserError(f'config.train.init_from={config.train.init_from}: no checkpoint there reads')
  step, restored = found
  fresh = init_state(config, tx, image_size)
  log.info('Warm start from %s at its step %d (weights only; a fresh optimizer)',
           config.train.init_from, step)
  params = jax.device_get(restored.params)
  return fresh.replace(params=params,
                       batch_stats=jax.device_get(restored.batch_stats),
                       opt_state=tx.init(params))


def _flags(dp: parallel.DataParallel, state: TrainState) -> tuple[int, int]:
  """The state's (bad_step, bad_term), read on the host."""
  bad_step, bad_term = jax.device_get(dp.local((state.bad_step, state.bad_term)))
  return int(bad_step), int(bad_term)


class _NoBar:
  """What the loop calls on a progress bar, when there is none (not a terminal, not process 0,
  or before the first step)."""

  def update(self, n: int) -> None:
    del n

  def set_postfix(self, **kwargs) -> None:
    del kwargs


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'
  return f'{seconds // 60} min {seconds % 60:02d} s' if seconds >= 60 else f'{seconds} s'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains on the collection `config.data` names; returns the final metrics (and PCK)."""
  workdir = pathlib.Path(workdir)
  primary = parallel.is_primary()  # across hosts only process 0 writes files

  # The workdir's own run and a warm start's source (config files only), the collection,
  # devices and the perceptual weights: a mistake in any stops here, with nothing written.
  check_same_run(config, workdir)
  source = warm_start_source(config)
  collection = prepare.load(config)
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
  schedule = optim.learning_rate(config)
  tx = optim.make_optimizer(config)
  if primary:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'config.json').write_text(config.to_json(indent=2))
  data = device_data(collection, config.parts.num_parts)

  # Model, loss and optimizer.
  loss = objective.Objective(model=make_model(config),
                             config=config,
                             num_devices=dp.num_devices,
                             perceptual=perceptual_fn)

  # Restore or init.
  checkpointer = checkpoint.Checkpointer(workdir, keep=config.checkpoint.keep)
  abstract = dp.abstract(state_lib.abstract_state(config, tx, collection.size))
  # Without a checkpoint of its own that reads, a run starts fresh, or from `train.init_from`.
  state, resumed = checkpointer.restore_or_init(
      abstract, lambda: warm_start(config, tx, collection.size, source)
      if source else init_state(config, tx, collection.size))
  if resumed is not None:
    log.info('Resumed from %s at step %d', checkpointer.directory, resumed)
  if resumed is None or dp.mode == 'pmap':
    state = dp.replicate(state)
  data, frozen = dp.replicate(data), dp.replicate(frozen)

  # The compiled step and the loop.
  step_fn = dp.wrap(make_step(loss, tx, schedule, config.seed), donate_argnums=(0,))
  begin = time.perf_counter()
  num_steps = config.train.num_steps
  start = int(dp.local(state).step)
  writer = MetricsWriter(workdir, start, primary=primary)
  metrics, step = {}, start
  # In a terminal, a progress bar (from the end of the compiling first step, so that its ETA
  # is the training's) with our log lines printed above it; in a log file (nohup, SLURM), a
  # line every `train.log_every` steps instead.
  terminal = primary and sys.stderr.isatty()
  progress, bar = _NoBar(), contextlib.ExitStack()
  try:
    for i in range(start, num_steps):
      state, metrics = step_fn(state, data, frozen)
      step = i + 1
      if i == start:
        # The first step compiles; steps_per_s counts from its end.
        jax.block_until_ready(state)
        last_time, last_step = time.perf_counter(), step
        log.info('First step (compilation included) took %.1f s', last_time - begin)
        if terminal:
          bar.enter_context(tqdm_logging.logging_redirect_tqdm([logging.getLogger('asic_jax')]))
          progress = bar.enter_context(
              tqdm(initial=step, total=num_steps, desc='train', dynamic_ncols=True))
      else:
        progress.update(1)
      if step % config.train.log_every == 0 or step == num_steps:
        _check_finite(*_flags(dp, state), checkpointer)
        now = time.perf_counter()
        record = {k: float(v) for k, v in jax.device_get(dp.local(metrics)).items()}
        record['step'] = step
        if step > last_step:
          record['steps_per_s'] = (step - last_step) / max(now - last_time, 1e-9)
          last_time, last_step = now, step
        writer.write(record)
        progress.set_postfix(total=f"{record['total']:.4f}", refresh=False)
        if primary and not terminal and 'steps_per_s' in record:
          left = (num_steps - step) / record['steps_per_s']
          log.info('step %d/%d, %.2f steps/s, ETA %s, loss %.4f', step, num_steps,
                   record['steps_per_s'], _duration(left), record['total'])
      if step % config.checkpoint.every == 0 or step == num_steps:
        _check_finite(*_flags(dp, state), checkpointer)
        checkpointer.save(step, dp.unreplicate(state), config)
      if config.vis.enabled and config.vis.every and step % config.vis.every == 0 and (step
                                                                                       < num_steps):
        _figures(config, dp.local(state), collection, workdir, writer, step)
  except KeyboardInterrupt:
    bar.close()
    checkpointer.wait()  # a started save finishes first
    last = checkpointer.latest_step()
    kept = (f'the last checkpoint is step {last} ({checkpointer.directory})'
            if last is not None else 'no checkpoint had been saved yet')
    raise Interrupted(f'interrupted at step {step} of {num_steps}; {kept}: rerun the same '
                      'command to resume from it') from None
  finally:  # an exception still lets a started save finish
    bar.close()
    checkpointer.close()

  result = {k: float(v) for k, v in jax.device_get(dp.local(metrics)).items()}
  result.update(_finish(config, dp.local(state), collection, workdir, writer))
  return result


def _finish(config, state, collection, workdir: pathlib.Path, writer: MetricsWriter) -> dict:
  """After the last step: the evaluation (when the collection has keypoints), the figures and
  the report; returns `{'eval': results}` or {}."""
  out = {}
  step = int(state.step)
  log.info('Flows of the %d images%s', len(collection),
           ', then the evaluation' if collection.eval_pairs is not None else '')
  flows = inference.collection_flows(config, state, collection.images,
                                     flipped=collection.flipped)
  if collection.eval_pairs is not None:
    results = out['eval'] = eval_run.evaluate_state(config,
                                                    state,
                                                    collection,
                                                    workdir,
                                                    step=step,
                                                    flows=flows)
    log.info('%s; %s', eval_run.headline(results), workdir / 'eval' / 'results.json')
    for alpha in ('0.10', '0.05'):
      writer.scalar(f'eval/pck@{alpha}', results['pck'][alpha], config.train.num_steps)
    for k, cycle in results['k_cycle'].items():
      writer.scalar(f'eval/{k}-cypck@0.10', cycle['pck']['0.10'], config.train.num_steps)
  if config.vis.enabled:
    log.info('Figures into %s', workdir / 'figures')
    _figures(config, state, collection, workdir, writer, config.train.num_steps, flows=flows)
  writer.close()
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
  figures = visualize.figures(config, state, collection, flows)
  if parallel.is_primary():
    visualize.save(figures, workdir / 'figures')
    writer.figures(figures, step)
