"""Entry point: `python -m asic_jax.main --config=configs/tiny.py --workdir=DIR`.

`config.mode` selects the job. Any config value can be overridden with
`--config.a.b=value`; a key that does not exist, a bad config file or a bad
value is one readable line and exit status 2.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from asic_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'A config file (configs/*.py[:arg]).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for checkpoints, metrics and reports.')


def _parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors instead of tracebacks."""
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f'error: {e}')
  except (AttributeError, KeyError) as e:
    # ml_collections raises these for `--config.<key>` naming no config field.
    message = str(e).strip('\'"').replace('\\n', ' ').replace('\\\'', "'")
    sys.exit(f'error: unknown config field in the command line: {message}')
  config = _CONFIG.value
  if config is None or not hasattr(config, 'mode'):
    sys.exit('error: give --config=configs/<name>.py (a file defining get_config); '
             f'got {flags.FLAGS["config"].value!r}')
  if not _WORKDIR.value:
    sys.exit('error: give --workdir=DIR (checkpoints, metrics and reports go there)')
  return rest


def run(config, workdir: str):
  """Runs the job `config.mode` names; returns what that job returns."""
  from asic_jax import train  # pylint: disable=import-outside-toplevel
  jobs = {'train': train.train_and_evaluate}
  if config.mode not in jobs:
    raise UserError(f'config.mode must be one of {sorted(jobs)}, got {config.mode!r}')
  return jobs[config.mode](config, workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.INFO)
  try:
    run(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
