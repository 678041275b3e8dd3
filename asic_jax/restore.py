"""A trained run in a workdir: its saved config (with this command line's evaluation
settings), its collection and its train state at a checkpoint. `mode=eval`, `mode=visualize`
and the Python API restore through here.
"""

import pathlib

import ml_collections

from asic_jax import checkpoint, config_lib, optim, parallel, prepare
from asic_jax import state as state_lib
from asic_jax.errors import UserError


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
  step = wanted or max(saved)
  if step not in saved:
    raise UserError(f'{"config.eval.step" if config is not None else "step"}={step}: no such '
                    f'checkpoint in {checkpointer.directory}; saved steps: '
                    f'{", ".join(map(str, sorted(saved)))}')
  trained = training_config(config, checkpointer, step)
  collection = prepare.load(trained)
  abstract = parallel.on_one_device(
      state_lib.abstract_state(trained, optim.make_optimizer(trained), collection.size))
  if wanted:
    try:
      step, state = checkpointer.restore(abstract, step)
    except Exception as e:  # pylint: disable=broad-except  # Orbax raises many kinds
      raise UserError(f'{"config.eval.step" if config is not None else "step"}={step}: the '
                      f'checkpoint in {checkpointer.directory} does not read '
                      f'({checkpoint.reason(e)})') from None
    return trained, collection, state, step
  # The latest: the newest that reads (a damaged one is named in a warning and skipped).
  found = checkpointer.restore_latest(abstract)
  if found is None:
    raise UserError(f'no checkpoint in {checkpointer.directory} reads (saved steps: '
                    f'{", ".join(map(str, sorted(saved)))}); see the warnings above')
  step, state = found
  return training_config(config, checkpointer, step), collection, state, step
