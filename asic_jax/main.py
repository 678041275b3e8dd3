"""Entry point: `python -m asic_jax.main --config=configs/tiny.py --workdir=DIR`.

`config.mode` selects the job (`run`: a module of `asic_jax.jobs` each). Any config value
can be overridden with `--config.a.b=value`; a key that does not exist, a bad config file or a
bad value is one readable line and exit status 2. Ctrl-C and SIGTERM stop the job cleanly with
one line (`asic_jax.interrupts`): exit status 130 and 143.
"""

import logging
import os
import pathlib
import re
import sys
import tempfile
import threading
from typing import Sequence
import warnings

if __name__ == '__main__':
  # Before anything else, so that a Ctrl-C even during the imports below is one line.
  from asic_jax import interrupts
  interrupts.install('stopped before the job started; nothing was written')

# pylint: disable=wrong-import-position
from absl import app, flags
import ml_collections
from ml_collections import config_flags

from asic_jax import interrupts, safe_io
from asic_jax.errors import DiskFull, Interrupted, UserError

_CONFIG = config_flags.DEFINE_config_file('config',
                                          None,
                                          'A config file (configs/*.py[:arg]).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for checkpoints, metrics and reports.')


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
    if not safe_io.is_disk_full(args.exc_value):
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
  """Runs the job `config.mode` names in `workdir` (`asic_jax.jobs`); returns what it returns.

  The command line and `launch.sweep` run every job through here: the config is checked
  (`validate.check`) and the workdir tried before the job starts. `given`: the dotted keys the
  command line set (`--config.KEY=...`); a job on a trained run names in a warning those it
  ignores (`restore.ignored_settings`).
  """
  # Imported here, so that the command line's errors do not wait for JAX to load.
  # pylint: disable=import-outside-toplevel,redefined-builtin
  from asic_jax import restore, validate
  from asic_jax.jobs import baseline, eval, extract, map, train, visualize
  jobs = {
      'train': train.run,
      'extract': extract.run,
      'eval': eval.run,
      'baseline': baseline.run,
      'visualize': visualize.run,
      'map': map.run,
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


def fail(message: str) -> None:
  """One readable line on stderr and exit status 2."""
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def _name_overrides(argv: list[str], message: str) -> str:
  """ml_collections names only the missing key's last part ('every'): name the whole
  `--config.a.b` arguments that hold it (`--config.optim.every`) before its message."""
  key = next(iter(re.findall(r'[A-Za-z_]\w*', message)), '')
  named = [
      item.split('=', 1)[0]
      for item in argv
      if item.startswith('--config.') and key in item.split('=', 1)[0].split('.')[1:]
  ]
  return f"{', '.join(named)} ({message})" if named else message


def _parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors instead of tracebacks."""
  try:
    rest = flags.FLAGS(argv)
    if len(rest) > 1:
      fail(f'unexpected argument {rest[1]!r}: the command takes only flags, --config=FILE, '
           '--workdir=DIR and --config.KEY=VALUE (no space around "=")')
  except UserError as e:  # raised by a config's get_config (a bad category, say)
    fail(str(e))
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if 'parsing config file' in lines[0]:
      # ml_collections folds get_config's exception, traceback and all, into the message:
      # keep its last line, the exception's own words.
      reason = lines[-1].split(': ', 1)[-1] if 'Error: ' in lines[-1] else lines[-1]
      fail(f'--config: {reason}')
    fail(str(e))
  except (AttributeError, KeyError) as e:
    # ml_collections raises these for `--config.<key>` naming no config field.
    message = str(e).strip('\'"').replace('\\n', ' ').replace("\\'", "'")
    fail(f'unknown config field in the command line: {_name_overrides(argv, message)}')
  try:
    config = _CONFIG.value
    has_mode = config is not None and hasattr(config, 'mode')
  except UserError as e:
    fail(str(e))
  except OSError as e:  # ml_collections' report of a config file it could not load
    reason = [line.strip() for line in str(e).splitlines() if line.strip()]
    fail(f'cannot load --config={flags.FLAGS["config"].serialize().split("=", 1)[-1]}: '
         f'{reason[-1] if reason else e}')
  if not has_mode:
    fail('give --config=configs/<name>.py (a file defining get_config() that returns a '
         'ConfigDict with a `mode` field)')
  if not _WORKDIR.value:
    fail('give --workdir=DIR (checkpoints, metrics and reports go there)')
  return rest


def _given(argv: list[str]) -> list[str]:
  """The dotted keys `--config.KEY=VALUE` arguments set."""
  return [item[len('--config.'):].split('=')[0] for item in argv if item.startswith('--config.')]


def main(argv):
  del argv  # only flags (`_parse_flags`)
  config, workdir = _CONFIG.value, _WORKDIR.value
  stopped = (f'{config.mode} stopped before it finished; what it had written is whole (every '
             'file is written atomically): rerun the same command' +
             (' to resume' if config.mode == 'train' else ''))
  interrupts.install(stopped)
  # Every failure leaves at once (`exit_at_once`): the interpreter's teardown would otherwise
  # run with JAX's and Orbax's threads still busy (tracebacks of pending writes, or a crash).
  try:
    setup_process(config)
    run(config, workdir, given=_given(sys.argv))
  except DiskFull as e:
    advice = '' if 'rerun' in str(e) else '; free some space and rerun the same command'
    interrupts.exit_at_once(f'error: {e}{advice}', 2)
  except UserError as e:
    interrupts.exit_at_once(f'error: {e}', 2)
  except Interrupted as e:
    interrupts.exit_at_once(str(e), e.code)
  except KeyboardInterrupt:  # a library's own SIGINT handler let one through
    interrupts.exit_at_once(f'interrupted (Ctrl-C): {stopped}', 130)
  except Exception as e:  # pylint: disable=broad-except
    if not safe_io.is_disk_full(e):
      raise
    # A write the job does not name itself (a library's): the workdir and the first line.
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    interrupts.exit_at_once(
        f'error: {safe_io.disk_full(workdir)} ({first}); free some space and rerun the same '
        'command', 2)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
