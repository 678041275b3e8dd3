"""A trained run read back from its workdir: the one way every part of the package does it.

`restore_run` gives its saved config (with this command line's evaluation settings), its
collection and its train state at a checkpoint (`mode=eval`, `visualize`, `map`, the Python
API); `warm_start` a fresh state with another run's weights (`train.init_from`);
`check_same_run` refuses a workdir that holds another config's run (training and
`launch.sweep`); `ignored_settings` names what a job on a trained run takes from the run rather
than from its command line. All read checkpoints through `Checkpointer.newest` (the newest that
reads) or at one given step.
"""

import json
import logging
import pathlib
from typing import Sequence

import jax
import ml_collections
import optax

from asic_jax import checkpoint, config_lib, optim, parallel, safe_io, saved_config, training_collection
from asic_jax import train_state
from asic_jax.errors import UserError

log = logging.getLogger(__name__)


def abstract_state(config: ml_collections.ConfigDict):
  """The shapes a checkpoint of the run `config` describes restores into, on this process's
  first device."""
  return parallel.on_one_device(
      train_state.abstract_state(config, optim.make_optimizer(config), config.data.img_size))


def saved_run(workdir: str | pathlib.Path,
              *,
              warn: bool = False) -> tuple[int, ml_collections.ConfigDict] | None:
  """`(step, config)` of the newest checkpoint in `workdir` whose config reads; None when there
  is none (a damaged one is skipped, named in a warning with `warn`)."""
  if not (pathlib.Path(workdir) / 'checkpoints').is_dir():
    return None
  found = checkpoint.Checkpointer(workdir, read_only=True).newest(warn=warn)
  return None if found is None else found[:2]


def restore_run(config: ml_collections.ConfigDict | None,
                workdir: str | pathlib.Path,
                *,
                step: int = 0):
  """The trained run in `workdir` at `config.eval.step` (0: the newest that reads).

  Args:
    config: the command line's config, whose evaluation settings (`EVAL_SETTINGS`) overlay
      the saved one and whose `eval.step` picks the checkpoint; or None: the saved config as
      it is, at `step`.
    workdir: the run's folder.
    step: the checkpoint when `config` is None (0: the newest that reads).

  Returns:
    `(trained config, collection, train state, step)`: the config is the one saved with that
    very step.
  """
  checkpointer = checkpoint.Checkpointer(workdir, read_only=True)
  saved = checkpointer.all_steps()
  if not saved:
    raise UserError(f'no checkpoint in {checkpointer.directory}; train first '
                    '(--config.mode=train)')
  wanted = config.eval.step if config is not None else step
  name = 'config.eval.step' if config is not None else 'step'
  steps = ', '.join(map(str, sorted(saved)))
  if wanted and wanted not in saved:
    raise UserError(f'{name}={wanted}: no such checkpoint in {checkpointer.directory}; saved '
                    f'steps: {steps}')
  if wanted:
    unreadable = lambda e: UserError(f'{name}={wanted}: the checkpoint in '
                                     f'{checkpointer.directory} does not read '
                                     f'({checkpoint.reason(e)})')
    try:
      trained = saved_config.overlay(config, checkpointer.restore_config(wanted))
    except Exception as e:  # pylint: disable=broad-except  # Orbax raises many kinds
      raise unreadable(e) from None
    collection = training_collection.load(trained)
    try:
      _, state = checkpointer.restore(abstract_state(trained), wanted)
    except Exception as e:  # pylint: disable=broad-except
      raise unreadable(e) from None
    return trained, collection, state, wanted
  # The newest checkpoint whose config and state both read (a damaged one is named in a
  # warning and skipped).
  found = checkpointer.newest(abstract_state)
  if found is None:
    raise UserError(f'no checkpoint in {checkpointer.directory} reads (saved steps: {steps}); '
                    'see the warnings above')
  step, trained, state = found
  trained = saved_config.overlay(config, trained)
  return trained, training_collection.load(trained), state, step


def check_init_from(config: ml_collections.ConfigDict) -> None:
  """`train.init_from` checked before anything runs: a folder without a checkpoint whose
  config reads, or a model of another shape, is one line."""
  if not config.train.init_from:
    return
  what = f'config.train.init_from={config.train.init_from}'
  found = saved_run(config.train.init_from, warn=True)
  if found is None:
    raise UserError(f'{what}: no checkpoint there (expected a trained run\'s workdir) or none '
                    'whose config reads')
  _, theirs = found
  differ = [
      f'{key} {config_lib.get(theirs, key)!r} there, {config_lib.get(config, key)!r} here'
      for key in ('model.channel_multiplier', 'model.grid_size')
      if config_lib.get(theirs, key) != config_lib.get(config, key)
  ]
  if differ:
    raise UserError(f'{what}: its model differs from this run\'s ({"; ".join(differ)})')


def warm_start(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
               image_size: int) -> train_state.TrainState:
  """A fresh state (`config.seed`) with the weights of the run in `train.init_from` (its newest
  checkpoint that reads; `check_init_from` first): U-Net, canonical grid and BatchNorm
  statistics; step 0, a fresh optimizer."""
  source = config.train.init_from
  found = checkpoint.Checkpointer(source, read_only=True).newest(abstract_state)
  if found is None:
    raise UserError(f'config.train.init_from={source}: no checkpoint there reads')
  step, _, restored = found
  fresh = train_state.init_state(config, tx, image_size)
  log.info('Warm start from %s at its step %d (weights only; a fresh optimizer)', source, step)
  params = jax.device_get(restored.params)
  return fresh.replace(params=params,
                       batch_stats=jax.device_get(restored.batch_stats),
                       opt_state=tx.init(params))


def check_same_run(config: ml_collections.ConfigDict,
                   workdir: str | pathlib.Path,
                   *,
                   remedy: str,
                   strict: bool = False) -> None:
  """Refuses a workdir that holds a run of another config (another collection, model or loss:
  a setting outside `saved_config.RESUME_SETTINGS` differs), naming what differs, rather than
  resuming it into a shape error or, worse, relabelling its model as trained on other photos.

  The run's config is its newest checkpoint's that reads. A workdir without one passes, unless
  `strict` (a sweep's workdir whose record names another config: a run whose checkpoints were
  removed still has its results there), which compares the run's `config.json` instead and
  refuses without one. `remedy` ends the message (what to do instead).
  """
  found = saved_run(workdir)
  where = f'at step {found[0]}' if found is not None else 'in its config.json'
  if found is not None:
    saved = found[1]
  elif not strict:
    return
  else:
    path = pathlib.Path(workdir) / 'config.json'
    try:  # read as it is: another run's file, not this run's to set aside
      saved = saved_config.from_saved(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
      raise UserError(f'{workdir} holds another run, without a checkpoint or a config.json that '
                      f'reads to compare this one with. {remedy}') from None
  changed = saved_config.changed_settings(saved, config)
  if changed:
    shown = '; '.join(changed[:3]) + (f'; and {len(changed) - 3} more' if len(changed) > 3 else '')
    raise UserError(f'{workdir} holds another run (config {config_lib.config_hash(saved)} {where}; '
                    f'this one is {config_lib.config_hash(config)}): {shown}. {remedy}')


# Settings that name the collection: a command line naming another one than the run's is
# most likely a mistake even when the setting came from another --config file.
_COLLECTION = ('data.name', 'data.path', 'data.category')


def ignored_settings(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                     given: Sequence[str]) -> list[str]:
  """What a job on a trained run (`eval`, `visualize`, `map`) takes from the run's saved
  config rather than from the command line, where the two differ: every `--config.KEY`
  override in `given` outside `EVAL_SETTINGS`, and the collection (`_COLLECTION`) when the
  command line names one. `KEY=value (the run's: saved)` each; [] without a readable run."""
  found = saved_run(workdir)
  if found is None:
    return []
  _, saved = found

  def value(tree, key):
    try:
      return config_lib.get(tree, key)
    except (KeyError, AttributeError, TypeError):
      return None  # a key one of the configs does not have (data.category outside benchmarks)

  keys = [k for k in given if not config_lib.is_eval_setting(k)]
  keys += [k for k in _COLLECTION if k not in keys and value(config, k)]
  return [
      f'{k}={value(config, k)!r} (the run\'s: {value(saved, k)!r})' for k in keys
      if value(config, k) != value(saved, k)
  ]


def repair_config_json(workdir: str | pathlib.Path, step: int) -> None:
  """`WORKDIR/config.json` (what the report shows) rebuilt from the config saved with the
  checkpoint at `step` when it is missing or does not read (set aside first, warned)."""
  path = pathlib.Path(workdir) / 'config.json'
  if safe_io.read_json(path, f'rebuilt from checkpoint {step}') is None:
    config = checkpoint.Checkpointer(workdir, read_only=True).restore_config(step)
    safe_io.write_text_atomic(path, config.to_json(indent=2))
