"""A trained run in a workdir: its saved config (with this command line's evaluation
settings), its collection and its train state at a checkpoint. `mode=eval`, `mode=visualize`
and the Python API restore through here.
"""

import logging
import pathlib

import ml_collections

from asic_jax import checkpoint, config_lib, optim, parallel, prepare
from asic_jax import state as state_lib
from asic_jax.errors import UserError

log = logging.getLogger(__name__)

def training_config(cli: ml_collections.ConfigDict | None, checkpointer: checkpoint.Checkpointer,
                    step: int | None) -> ml_collections.ConfigDict:
  """The config saved with the checkpoint, with the command line's evaluation settings
  (`cli`; None keeps the saved ones)."""
  config = checkpointer.restore_config(step)
  for dotted in config_lib.EVAL_SETTINGS if cli is not None else ():
    src, last = config_lib.parent(cli, dotted)
    dst, _ = config_lib.parent(config, dotted)
    if src is not None and dst is not None and last in src:
      dst[last] = src[last]
  return config


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
    `(trained config, collection, train state, step)`.
  """
  checkpointer = checkpoint.Checkpointer(workdir, read_only=True)
  saved = checkpointer.all_steps()
  if not saved:
    raise UserError(f'no checkpoint in {checkpointer.directory}; train first '
                    '(--config.mode=train)')
  wanted = config.eval.step if config is not None else step
  name = 'config.eval.step' if config is not None else 'step'
  if wanted and wanted not in saved:
    raise UserError(f'{name}={wanted}: no such checkpoint in {checkpointer.directory}; saved '
                    f'steps: {", ".join(map(str, sorted(saved)))}')
  trained = None
  for candidate in [wanted] if wanted else sorted(saved, reverse=True):
    try:
      trained = training_config(config, checkpointer, candidate)
      break
    except Exception as e:  # pylint: disable=broad-except  # Orbax raises many kinds
      if wanted:
        raise UserError(f'{name}={wanted}: the checkpoint in {checkpointer.directory} does not '
                        f'read ({checkpoint.reason(e)})') from None
      log.warning('Checkpoint %s/%d: its config does not read (%s); skipped',
                  checkpointer.directory, candidate, checkpoint.reason(e))
  if trained is None:
    raise UserError(f'no checkpoint in {checkpointer.directory} reads (saved steps: '
                    f'{", ".join(map(str, sorted(saved)))}); see the warnings above')
  collection = prepare.load(trained)
  abstract = parallel.on_one_device(
      state_lib.abstract_state(trained, optim.make_optimizer(trained), collection.size))
  if wanted:
    try:
      step, state = checkpointer.restore(abstract, wanted)
    except Exception as e:  # pylint: disable=broad-except  # Orbax raises many kinds
      raise UserError(f'{name}={wanted}: the checkpoint in {checkpointer.directory} does not '
                      f'read ({checkpoint.reason(e)})') from None
    return trained, collection, state, step
  # The latest: the newest that reads (a damaged one is named in a warning and skipped).
  found = checkpointer.restore_latest(abstract)
  if found is None:
    raise UserError(f'no checkpoint in {checkpointer.directory} reads (saved steps: '
                    f'{", ".join(map(str, sorted(saved)))}); see the warnings above')
  step, state = found
  return training_config(config, checkpointer, step), collection, state, step
