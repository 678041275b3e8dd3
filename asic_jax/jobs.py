"""The jobs `config.mode` selects, by name: one dispatcher for the command line and sweeps."""

import logging
import os
import pathlib
import sys
import tempfile
import threading
from typing import Sequence
import warnings

import ml_collections

from asic_jax import files
from asic_jax.errors import UserError


def setup_process(config: ml_collections.ConfigDict) -> None:
  """What a process does once before its first job (the command line and sweeps alike):
  our progress messages at INFO on stderr, libraries (Orbax above all) only at WARNING,
  and `jax.distributed.initialize()` when `config.distributed`. Calling it again is a no-op.
  """
  ours = logging.getLogger('asic_jax')
  if not ours.handlers:  # only this function gives our logger a handler
    # A warning is one line (Python's default adds the source line that raised it).
    warnings.formatwarning = lambda message, category, *_, **__: (f'{category.__name__}: '
                                                                  f'{message}\n')
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
    absl_logging.set_verbosity(absl_logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    _quiet_background_failures()
  if config.distributed:
    from asic_jax import parallel  # pylint: disable=import-outside-toplevel
    parallel.initialize_distributed(config)


def _quiet_background_failures() -> None:
  """A full device met by a library's background thread (TensorBoard's writer, Orbax's save)
  is reported once, as one line, by the next write of the job's own thread (`DiskFull`): the
  background thread's traceback is dropped, and so are TensorStore's reports of the callbacks
  it can no longer deliver to Orbax's event loop, closed by the failed save (one per pending
  write: over a hundred)."""
  thread_hook, unraisable_hook = threading.excepthook, sys.unraisablehook

  def on_thread(args):
    if not files.is_disk_full(args.exc_value):
      thread_hook(args)

  def on_unraisable(unraisable):
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == 'Event loop is closed'):
      unraisable_hook(unraisable)

  threading.excepthook = on_thread
  sys.unraisablehook = on_unraisable


def check_workdir(workdir: str | pathlib.Path) -> None:
  """A workdir that is a file, or a folder nobody can write in, is one line before anything
  runs. Writing is tried for real (a temporary file, removed): permissions do not tell on a
  read-only filesystem, nor for root."""
  path = pathlib.Path(workdir)
  existing = path
  while not existing.exists() and existing != existing.parent:
    existing = existing.parent
  if not existing.is_dir():
    where = 'is a file' if existing == path else f'is inside {existing}, a file'
    raise UserError(f'--workdir={path} {where}, not a folder; give a folder')
  try:
    handle, probe = tempfile.mkstemp(prefix='.asic-write-test-', dir=existing)
    os.close(handle)
    os.unlink(probe)
  except OSError as e:
    raise UserError(f'--workdir={path}: cannot write in {existing} ({e.strerror or e}); '
                    'give a folder you can write to') from None


# Jobs on a trained run: they take its settings from the config saved with its checkpoint.
ON_TRAINED_RUN = ('eval', 'visualize', 'map')


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, given: Sequence[str] = ()):
  """Runs the job `config.mode` names in `workdir`; returns what that job returns.

  `given`: the dotted keys the command line set (`--config.KEY=...`); a job on a trained run
  names in a warning those it ignores (`restore.ignored_settings`).
  """
  # Imported here, so that the command line's errors do not wait for JAX to load.
  # pylint: disable=import-outside-toplevel
  from asic_jax import api, baseline, eval_run, prepare, restore, train, validate, visualize
  jobs = {
      'train': train.train_and_evaluate,
      'extract': prepare.extract_job,
      'eval': eval_run.evaluate_run,
      'baseline': baseline.baseline_run,
      'visualize': visualize.visualize_run,
      'map': api.map_run,
  }
  if config.mode not in jobs:
    raise UserError(f'config.mode must be one of {sorted(jobs)}, got {config.mode!r}')
  validate.check(config)
  check_workdir(workdir)
  if config.mode in ON_TRAINED_RUN:
    ignored = restore.ignored_settings(config, workdir, given)
    if ignored:
      logging.getLogger(__name__).warning(
          'mode=%s works on the run saved in %s, with its own settings; ignored from the '
          'command line: %s', config.mode, workdir, ', '.join(ignored))
  return jobs[config.mode](config, workdir)
