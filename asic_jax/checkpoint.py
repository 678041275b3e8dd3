"""Orbax checkpoints in `WORKDIR/checkpoints`: restore-or-init, periodic save, wait.

Each step folder holds the train state ('state') and the config as JSON
('config'). Orbax writes a step into a temporary folder and renames it when
complete, so an interrupted save never leaves a half-written checkpoint that a
later run would trust. A checkpoint that does not read back (a file lost or
truncated since), or whose config does not, is set aside in
`WORKDIR/checkpoints_unreadable/<step>`, never deleted, with a warning naming it and why, and
the newest one that reads is used. A save that finds the device full is `DiskFull` naming the
step's folder, the space free there and about what a checkpoint needs; its unfinished folder
is removed and the checkpoints before it are untouched.
"""

import contextlib
import json
import logging
import pathlib
import shutil
import threading
import time
from typing import Any, Callable, Iterator

import jax
import ml_collections
import orbax.checkpoint as ocp

from asic_jax import safe_io, saved_config

log = logging.getLogger(__name__)
ASIDE = 'checkpoints_unreadable'
# Orbax's reports, from its background threads, that an asynchronous save failed: the same
# error is raised again in the main thread at the next save or wait, and reported there (as
# one line when the device is full), so these would only repeat it as long tracebacks.
_BACKGROUND_FAILURES = ('raised an exception', 'Failed to run', 'thread (save_finalize) failed',
                        'Checkpointer failed')


class _QuietOrbax(logging.Filter):
  """Drops Orbax's notices that a manager opened read-only is read-only (three per restore)
  and its background threads' reports of a failed save (`_BACKGROUND_FAILURES`)."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if 'read only' in message or 'read_only=True' in message:
      return False
    if 'orbax' not in record.pathname:
      return True
    # A failed save's temporary folder, removed under a background thread that then looks for
    # its metadata (seen once in CI on a full device): a follow-on of the failure already said.
    return not (any(text in message for text in _BACKGROUND_FAILURES) or
                ('does not exist' in message and '.orbax-checkpoint-tmp' in message))


logging.getLogger('absl').addFilter(_QuietOrbax())


def _join_background_writes(timeout: float = 60.0) -> None:
  """Waits for the threads Orbax started for a save (its array and metadata writes, its
  finalisation), which run on after the first of them fails."""
  deadline = time.monotonic() + timeout
  for thread in threading.enumerate():
    if thread is not threading.current_thread() and type(thread).__module__.startswith('orbax'):
      thread.join(max(0.0, deadline - time.monotonic()))


def _remove_unfinished(directory: pathlib.Path,
                       *,
                       quiet: float = 0.5,
                       timeout: float = 30.0) -> None:
  """Removes every unfinished save's temporary folder (after a failed save no other is being
  written: the workdir lock keeps other runs out) until none comes back for `quiet` seconds: a
  write still running on a pool thread, which `_join_background_writes` cannot tell from
  other threads, can make its folder again after the first removal (seen on a loaded CPU)."""
  deadline = time.monotonic() + timeout
  calm_since = time.monotonic()
  while time.monotonic() < deadline:
    found = list(directory.glob('*.orbax-checkpoint-tmp*'))
    for unfinished in found:
      shutil.rmtree(unfinished, ignore_errors=True)
    now = time.monotonic()
    if found:
      calm_since = now
    elif now - calm_since >= quiet:
      return
    time.sleep(0.05)


def reason(error: Exception) -> str:
  """The first line of an Orbax / TensorStore error (which can run to thousands)."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return f'{type(error).__name__}: {lines[0][:300] if lines else ""}'


class Checkpointer:
  """A thin wrapper of `ocp.CheckpointManager` for one run's workdir."""

  def __init__(self, workdir: str | pathlib.Path, *, keep: int = 3, read_only: bool = False):
    self.directory = pathlib.Path(workdir).absolute() / 'checkpoints'
    self.read_only = read_only
    self._saving = None  # the step of the newest save started (it may still be writing)
    self._failed = False
    # cleanup_tmp_directories: a save a killed process left unfinished (Orbax's temporary
    # folder, never trusted as a checkpoint) is removed when the run resumes.
    self._options = ocp.CheckpointManagerOptions(max_to_keep=keep,
                                                 create=not read_only,
                                                 read_only=read_only,
                                                 cleanup_tmp_directories=not read_only)
    self._open()

  def _open(self) -> None:
    self._manager = ocp.CheckpointManager(self.directory,
                                          options=self._options,
                                          item_names=('state', 'config'))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  @property
  def saving(self) -> int | None:
    """The step of the newest save this checkpointer started (it may still be writing)."""
    return self._saving

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, config: ml_collections.ConfigDict) -> None:
    """Saves `state` (a pytree of arrays) and `config` at `step` (asynchronously: an error of
    the write surfaces at the next save or `wait`).

    Raises:
      DiskFull: this save, or the one before, found the device full.
    """
    self.wait()  # Orbax waits for the previous save anyway; its error is that step's
    self._saving = step
    with self._failing_save():
      self._manager.save(step,
                         args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                 config=ocp.args.JsonSave(
                                                     json.loads(config.to_json()))),
                         force=True)

  @contextlib.contextmanager
  def _failing_save(self) -> Iterator[None]:
    """Turns a full device met by a save into `DiskFull` naming the step's folder, after
    removing what that save left unfinished."""
    try:
      yield
    except Exception as error:  # pylint: disable=broad-except  # Orbax wraps the OSError
      if not safe_io.is_disk_full(error):
        raise
      self._failed = True
      _join_background_writes()  # the save's other writes may still be running
      _remove_unfinished(self.directory)
      raise safe_io.disk_full(self.directory / str(self._saving), self.size_of_latest()) from None

  def size_of_latest(self) -> int | None:
    """Bytes of the newest complete checkpoint (about what the next one needs), or None. Read
    from disk: after a failed save Orbax's own list names that save's step."""
    if not self.directory.is_dir():
      return None
    steps = [int(p.name) for p in self.directory.iterdir() if p.name.isdigit()]
    steps = [s for s in steps if s != self._saving]
    if not steps:
      return None
    folder = self.directory / str(max(steps))
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())

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

  def newest(self,
             abstract: Callable[[ml_collections.ConfigDict], Any] | None = None,
             *,
             warn: bool = True) -> tuple[int, ml_collections.ConfigDict, Any] | None:
    """The newest checkpoint that reads, as `(step, config, state)`; None when none does.

    The one loop over a run's checkpoints, newest first (training's restore-or-init, a warm
    start, evaluation, the API and the same-run check all read through it). A checkpoint is
    whole only with its config: that must read, and given `abstract` (the shapes and placement
    to restore into, from that config: `abstract(config)`) its state too; without `abstract`,
    `state` is None. Each newer one that fails is named in a warning (`warn`) with the reason
    and, when states are read and the checkpointer is not read-only, moved to
    `WORKDIR/checkpoints_unreadable/<step>` (kept, never deleted).
    """
    for step in sorted(self.all_steps(), reverse=True):
      try:
        config = self.restore_config(step)
        state = None if abstract is None else self.restore(abstract(config), step)[1]
        return step, config, state
      except Exception as error:  # pylint: disable=broad-except  # Orbax raises many kinds
        why = reason(error)
      if not warn:
        continue
      if self.read_only or abstract is None:
        log.warning('Checkpoint %s/%d does not read (%s); skipped', self.directory, step, why)
        continue
      aside = self.directory.parent / ASIDE / str(step)
      if aside.exists():
        aside = aside.with_name(f'{step}.{len(list(aside.parent.iterdir()))}')
      aside.parent.mkdir(parents=True, exist_ok=True)
      self._manager.close()
      shutil.move(str(self.directory / str(step)), str(aside))
      self._open()
      log.warning('Checkpoint %d does not read (%s); moved to %s, using the one before', step, why,
                  aside)
    return None

  def restore_or_init(self, abstract_state: Any, init: Callable[[], Any]) -> tuple[Any, int | None]:
    """The newest checkpoint that reads (`newest`), or `init()` when none does.

    Returns:
      (state, the restored step or None when `init` made it).
    """
    found = self.newest(lambda _: abstract_state) if self.all_steps() else None
    if found is None:
      if self.all_steps() or (self.directory.parent / ASIDE).exists():
        log.warning('No checkpoint in %s reads; starting again from step 0', self.directory)
      return init(), None
    step, _, state = found
    return state, step

  def restore_config(self, step: int | None = None) -> ml_collections.ConfigDict:
    """The config saved beside the checkpoint at `step` (the latest when None), over today's
    defaults: a key added since the run was saved takes its default (`saved_config.from_saved`)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {self.directory}')
    restored = self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return saved_config.from_saved(restored.config)

  def wait(self) -> None:
    """Blocks until every asynchronous save has been written.

    Raises:
      DiskFull: the last save found the device full.
    """
    with self._failing_save():
      self._manager.wait_until_finished()

  def close(self, quiet: bool = False) -> None:
    """Waits for every save, then closes (a second call does nothing). After a save failed
    (already raised), or with `quiet` (another error is on its way), a save's error is not
    raised."""
    if self._manager is None:
      return
    quiet = quiet or self._failed
    try:
      self.wait()
    except Exception:  # pylint: disable=broad-except
      if not quiet:
        raise
    finally:
      manager, self._manager = self._manager, None
      try:
        manager.close()
      except Exception:  # pylint: disable=broad-except
        if not quiet:
          raise
