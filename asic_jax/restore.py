"""A trained run in a workdir: its saved config (with this command line's evaluation
settings), its collection and its train state at a checkpoint. `mode=eval`, `mode=visualize`
and the Python API restore through here.
"""

import logging
import pathlib
from typing import Sequence

import ml_collections

from asic_jax import checkpoint, config_lib, files, optim, parallel, prepare, saved_config
from asic_jax import state as state_lib
from asic_jax.errors import UserError

log = logging.getLogger(__name__)

def training_config(cli: ml_collections.ConfigDict | None, checkpointer: checkpoint.Checkpointer,
                    step: int | None) -> ml_collections.ConfigDict:
  """The config saved with the checkpoint, with the command line's evaluation settings
  (`cli`; None keeps the saved ones)."""
  return saved_config.overlay(cli, checkpointer.restore_config(step))


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
      trained = training_config(config, checkpointer, wanted)
    except Exception as e:  # pylint: disable=broad-except  # Orbax raises many kinds
      raise unreadable(e) from None
    collection = prepare.load(trained)
    try:
      _, state = checkpointer.restore(_abstract(trained, collection), wanted)
    except Exception as e:  # pylint: disable=broad-except
      raise unreadable(e) from None
    return trained, collection, state, wanted
  # The newest checkpoint whose state and config both read (a damaged one is named in a
  # warning and skipped); the collection and shapes come from any config of the run.
  found = checkpointer.newest_config(warn=False)
  if found is None:
    raise UserError(f'no checkpoint in {checkpointer.directory} reads (saved steps: {steps}): '
                    'the config saved with each does not read')
  collection = prepare.load(saved_config.overlay(config, found[1]))
  found = checkpointer.restore_latest(_abstract(found[1], collection))
  if found is None:
    raise UserError(f'no checkpoint in {checkpointer.directory} reads (saved steps: {steps}); '
                    'see the warnings above')
  step, state = found
  return training_config(config, checkpointer, step), collection, state, step


def _abstract(trained: ml_collections.ConfigDict, collection):
  """The shapes a checkpoint of the run restores into, on this process's first device."""
  return parallel.on_one_device(
      state_lib.abstract_state(trained, optim.make_optimizer(trained), collection.size))


# Settings that name the collection: a command line naming another one than the run's is
# most likely a mistake even when the setting came from another --config file.
_COLLECTION = ('data.name', 'data.path', 'data.category')


def ignored_settings(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                     given: Sequence[str]) -> list[str]:
  """What a job on a trained run (`eval`, `visualize`, `map`) takes from the run's saved
  config rather than from the command line, where the two differ: every `--config.KEY`
  override in `given` outside `EVAL_SETTINGS`, and the collection (`_COLLECTION`) when the
  command line names one. `KEY=value (the run's: saved)` each; [] without a readable run."""
  found = checkpoint.Checkpointer(workdir, read_only=True).newest_config(
      warn=False) if (pathlib.Path(workdir) / 'checkpoints').is_dir() else None
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
  if files.read_json(path, f'rebuilt from checkpoint {step}') is None:
    config = checkpoint.Checkpointer(workdir, read_only=True).restore_config(step)
    files.write_text_atomic(path, config.to_json(indent=2))
