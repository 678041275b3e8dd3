"""Orbax checkpoints in `WORKDIR/checkpoints`: restore-or-init, periodic save, wait.

Each step folder holds the train state ('state') and the config as JSON
('config'). Orbax writes a step into a temporary folder and renames it when
complete, so an interrupted save never leaves a half-written checkpoint that a
later run would trust.
"""

import json
import pathlib
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp


class Checkpointer:
  """A thin wrapper of `ocp.CheckpointManager` for one run's workdir."""

  def __init__(self, workdir: str | pathlib.Path, *, keep: int = 3, read_only: bool = False):
    self.directory = pathlib.Path(workdir).absolute() / 'checkpoints'
    # cleanup_tmp_directories: a save a killed process left unfinished (Orbax's temporary
    # folder, never trusted as a checkpoint) is removed when the run resumes.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep,
                                           create=not read_only,
                                           read_only=read_only,
                                           cleanup_tmp_directories=not read_only)
    self._manager = ocp.CheckpointManager(self.directory,
                                          options=options,
                                          item_names=('state', 'config'))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, config: ml_collections.ConfigDict) -> None:
    """Saves `state` (a pytree of arrays) and `config` at `step` (asynchronously)."""
    self._manager.save(step,
                       args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                               config=ocp.args.JsonSave(json.loads(
                                                   config.to_json()))),
                       force=True)

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[int, Any]:
    """Restores the state at `step` (the latest when None) into `abstract_state`'s shape.

    Args:
      abstract_state: a pytree of `jax.ShapeDtypeStruct` (with shardings) or arrays
        giving the structure, dtypes and placement to restore into.
      step: which step; None for the latest.

    Returns:
      (step, state).
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {self.directory}')
    if step not in self.all_steps():
      raise FileNotFoundError(f'no checkpoint at step {step} in {self.directory}; '
                              f'saved steps: {self.all_steps()}')
    abstract_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    restored = self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    return step, restored.state

  def restore_config(self, step: int | None = None) -> ml_collections.ConfigDict:
    """The config saved beside the checkpoint at `step` (the latest when None)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {self.directory}')
    restored = self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return ml_collections.ConfigDict(restored.config)

  def wait(self) -> None:
    """Blocks until every asynchronous save has been written."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
