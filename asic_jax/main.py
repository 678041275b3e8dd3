"""Entry point: `python -m asic_jax.main --config=configs/tiny.py --workdir=DIR`.

`config.mode` selects the job. Any config value can be overridden with
`--config.a.b=value`; a key that does not exist, a bad config file or a bad
value is one readable line and exit status 2. Ctrl-C and SIGTERM stop the job
cleanly with one line (`asic_jax.interrupts`): exit status 130 and 143.
"""

import re
import sys

if __name__ == '__main__':
  # Before anything else, so that a Ctrl-C even during the imports below is one line.
  from asic_jax import interrupts
  interrupts.install('stopped before the job started; nothing was written')

# pylint: disable=wrong-import-position
from absl import app, flags
from ml_collections import config_flags

from asic_jax import files, interrupts, jobs
from asic_jax.errors import DiskFull, Interrupted, UserError

_CONFIG = config_flags.DEFINE_config_file('config',
                                          None,
                                          'A config file (configs/*.py[:arg]).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for checkpoints, metrics and reports.')


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
    jobs.setup_process(config)
    jobs.run(config, workdir, given=_given(sys.argv))
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
    if not files.is_disk_full(e):
      raise
    # A write the job does not name itself (a library's): the workdir and the first line.
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    interrupts.exit_at_once(
        f'error: {files.disk_full(workdir)} ({first}); free some space and rerun the same '
        'command', 2)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
