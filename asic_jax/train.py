"""Training: state, the jitted data-parallel step, the loop and its cadence.

`train(config, workdir, hooks)` reads top to bottom: the collection, the devices, the model
and optimizer, restore-or-init, the compiled step, the loop (metrics at `train.log_every`,
checkpoints at `checkpoint.every` and at the end), then `hooks.finish`. What a run makes of
its state besides checkpoints and metrics (figures on the way; the evaluation, figures and
report at the end) is passed in by its job (`asic_jax.jobs.train`), so this module imports no
evaluation, drawing or report.
"""

import contextlib
import dataclasses
import logging
import pathlib
import signal
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm
from tqdm.contrib import logging as tqdm_logging

from asic_jax import (checkpoint, interrupts, lock, objective, optim, parallel, restore, safe_io,
                      training_collection)
from asic_jax import train_state
from asic_jax.errors import DiskFull, Interrupted, NonFiniteError, UserError, WorkdirLocked
from asic_jax.logs import MetricsWriter
from asic_jax.models import asic, perceptual
from asic_jax.train_state import TrainState, init_state

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


def _check_finite(bad_step: int, bad_term: int, checkpointer: checkpoint.Checkpointer) -> None:
  """Stops the run at the first non-finite loss term (or gradient) the step flagged."""
  if bad_step >= 0:
    checkpointer.wait()
    term = objective.FLAGGED[bad_term]
    what = 'gradient' if term == 'gradient' else f'{term} loss'
    raise NonFiniteError(f'non-finite {what} at step {bad_step}; stopped, {_kept(checkpointer)}')


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


def _nothing(*args) -> dict:
  del args
  return {}


@dataclasses.dataclass(frozen=True)
class Hooks:
  """What a run makes of its state besides checkpoints and metrics; by default nothing.

  Attributes:
    check: `(config, collection)`, before anything is written: raises `UserError` for
      settings `figures` or `finish` would refuse later (a bad `vis.pairs`, say).
    figures: `(config, state, collection, workdir, writer, step)`, every `vis.every` steps
      (with `vis.enabled`), the state on one device.
    finish: `(config, state, collection, workdir, writer) -> dict` after the last step (the
      state on one device); its dict joins what `train` returns.
  """
  check: Callable[..., Any] = _nothing
  figures: Callable[..., Any] = _nothing
  finish: Callable[..., dict] = _nothing


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
          hooks: Hooks = Hooks()) -> dict:
  """Trains on the collection `config.data` names; returns the final metrics and what
  `hooks.finish` returns.

  One training run at a time holds a workdir (`asic_jax.lock`): a second is refused with one
  line naming the first.
  """
  workdir = pathlib.Path(workdir)
  with _workdir_lock(workdir):
    return _train(config, workdir, hooks)


@contextlib.contextmanager
def _workdir_lock(workdir: pathlib.Path):
  """Process 0 holds the workdir's lock for the run (every host sees the same workdir); every
  process learns whether it got it, so that all stop together when another run holds it."""
  with contextlib.ExitStack() as stack:
    refused = None
    if parallel.is_primary():
      try:
        stack.enter_context(lock.hold(workdir))
      except WorkdirLocked as e:
        refused = e
    if jax.process_count() > 1 and not parallel.every_process(refused is None).all():
      raise refused or WorkdirLocked(f'{workdir} is in use by another training run (process 0 '
                                     'names it)')
    if refused is not None:
      raise refused
    yield


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path, hooks: Hooks) -> dict:
  primary = parallel.is_primary()  # across hosts only process 0 writes files

  # The workdir's own run and a warm start's source (config files only), the collection,
  # devices and the perceptual weights: a mistake in any stops here, with nothing written.
  restore.check_same_run(config,
                         workdir,
                         remedy=f'Give another --workdir (with --config.train.init_from={workdir} '
                         'to start from its weights)')
  restore.check_init_from(config)
  collection = training_collection.load(config)
  hooks.check(config, collection)
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
  data = device_data(collection, config.parts.num_parts)

  # Model, loss and optimizer.
  loss = objective.Objective(model=asic.make_model(config, bn_axis_name=parallel.AXIS),
                             config=config,
                             num_devices=dp.num_devices,
                             perceptual=perceptual_fn)

  # Restore or init.
  checkpointer = checkpoint.Checkpointer(workdir, keep=config.checkpoint.keep)
  abstract = dp.abstract(train_state.abstract_state(config, tx, collection.size))
  # Without a checkpoint of its own that reads, a run starts fresh, or from `train.init_from`.
  state, resumed = checkpointer.restore_or_init(
      abstract, lambda: restore.warm_start(config, tx, collection.size)
      if config.train.init_from else init_state(config, tx, collection.size))
  if resumed is not None:
    log.info('Resumed from %s at step %d', checkpointer.directory, resumed)
  if resumed is None or dp.mode == 'pmap':
    state = dp.replicate(state)
  data, frozen = dp.replicate(data), dp.replicate(frozen)
  num_steps = config.train.num_steps
  start = int(dp.local(state).step)
  if primary:
    _record_config(config, workdir, start, checkpointer)

  # The compiled step and the loop.
  step_fn = dp.wrap(make_step(loss, tx, schedule, config.seed), donate_argnums=(0,))
  begin = time.perf_counter()
  writer = MetricsWriter(workdir, start, primary=primary)
  metrics, step, stop = {}, start, None
  # In a terminal, a progress bar (from the end of the compiling first step, so that its ETA
  # is the training's) with our log lines printed above it; in a log file (nohup, SLURM), a
  # line every `train.log_every` steps instead.
  terminal = primary and sys.stderr.isatty()
  progress, bar = _NoBar(), contextlib.ExitStack()
  # On the command line Ctrl-C and SIGTERM (`interrupts`) stop the loop after its step, which
  # is saved; a second signal stops at once.
  at_once = (f'stopped at once by a second signal; the newest checkpoint in '
             f'{checkpointer.directory} is whole: rerun the same command to resume from it')
  interrupts.defer(at_once)
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
      logged = step % config.train.log_every == 0 or step == num_steps
      if logged:
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
        hooks.figures(config, dp.local(state), collection, workdir, writer, step)
      stop = _stop_signal(logged)
      if stop is not None:
        break
    stop = stop or _stop_signal(True)
    if stop is not None:
      bar.close()
      _stop(stop, step, state, dp, checkpointer, config, writer)
    checkpointer.wait()  # the last save's error (a full device) is this loop's
  except KeyboardInterrupt:  # the Python API's Ctrl-C (the command line's is a signal above)
    bar.close()
    checkpointer.wait()  # a started save finishes first
    writer.close()
    raise Interrupted(f'{interrupts.word(signal.SIGINT)} at step {step} of {num_steps}; '
                      f'{_kept(checkpointer)}: rerun the same command to resume from it') from None
  except DiskFull as e:
    raise DiskFull(f'{e}; {_kept(checkpointer)}: free some space and rerun the same command to '
                   'resume from it') from None
  finally:  # an exception still lets a started save finish (its own error, if any, unsaid)
    bar.close()
    checkpointer.close(quiet=sys.exc_info()[0] is not None)
    interrupts.undefer()

  result = {k: float(v) for k, v in jax.device_get(dp.local(metrics)).items()}
  result.update(hooks.finish(config, dp.local(state), collection, workdir, writer))
  writer.close()
  return result


def _record_config(config: ml_collections.ConfigDict, workdir: pathlib.Path, start: int,
                   checkpointer: checkpoint.Checkpointer) -> None:
  """`WORKDIR/config.json`: this config, when the run trains on (or has just finished).
  A workdir already past `train.num_steps` has nothing to train: a warning says so and
  config.json keeps the run's own settings (rebuilt from the checkpoint when it does not
  read)."""
  if start <= config.train.num_steps:
    safe_io.write_text_atomic(workdir / 'config.json', config.to_json(indent=2))
    return
  log.warning(
      '%s is already at step %d, past train.num_steps=%d: nothing to train; the evaluation, '
      'figures and report are of step %d and config.json keeps the run\'s own settings (an '
      'earlier checkpoint: --config.mode=eval --config.eval.step=N)', workdir, start,
      config.train.num_steps, start)
  if safe_io.read_json(workdir / 'config.json', 'rebuilt from the checkpoint') is None:
    safe_io.write_text_atomic(workdir / 'config.json',
                              checkpointer.restore_config(start).to_json(indent=2))


def _stop_signal(logged: bool) -> int | None:
  """The signal (`interrupts`) that stops the run after this step, or None. Across hosts
  every process must stop after the same step: they compare at logged steps only (where the
  loop syncs with the host anyway)."""
  if jax.process_count() == 1:
    return interrupts.requested()
  if not logged:
    return None
  signals = [int(s) for s in parallel.every_process(interrupts.requested() or 0) if s]
  return signals[0] if signals else None


def _stop(signum: int, step: int, state, dp: parallel.DataParallel,
          checkpointer: checkpoint.Checkpointer, config: ml_collections.ConfigDict,
          writer: MetricsWriter) -> None:
  """Ends the run after a signal: the step just run is saved (unless it was), the save
  waited for; raises `Interrupted` saying where it stopped."""
  _check_finite(*_flags(dp, state), checkpointer)
  if step not in (checkpointer.latest_step(), checkpointer.saving):
    checkpointer.save(step, dp.unreplicate(state), config)
  checkpointer.wait()
  writer.close()
  interrupts.acknowledge()
  raise Interrupted(
      f'{interrupts.word(signum)} at step {step} of {config.train.num_steps}; saved a checkpoint '
      f'at step {step} in {checkpointer.directory}: rerun the same command to resume from it',
      interrupts.code(signum))


def _kept(checkpointer: checkpoint.Checkpointer) -> str:
  """What a stopped run left: 'the last checkpoint (step N) is intact'."""
  # Read from disk afresh: `checkpointer` may be closed, or hold a failed save.
  last = checkpoint.Checkpointer(checkpointer.directory.parent, read_only=True).latest_step()
  return (f'the last checkpoint (step {last}) is intact'
          if last is not None else 'no checkpoint had been saved')
