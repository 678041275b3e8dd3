"""The jobs `config.mode` selects, by name: one dispatcher for the command line and sweeps."""

import logging
import pathlib

import ml_collections

from asic_jax import config_lib
from asic_jax.errors import UserError


def setup_process(config: ml_collections.ConfigDict) -> None:
  """What a process does once before its first job (the command line and sweeps alike):
  our progress messages at INFO on stderr, libraries (Orbax above all) only at WARNING,
  and `jax.distributed.initialize()` when `config.distributed`. Calling it again is a no-op.
  """
  ours = logging.getLogger('asic_jax')
  if not ours.handlers:  # only this function gives our logger a handler
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
    absl_logging.set_verbosity(absl_logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
  if config.distributed:
    from asic_jax import parallel  # pylint: disable=import-outside-toplevel
    parallel.initialize_distributed(config)


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
  """Runs the job `config.mode` names in `workdir`; returns what that job returns."""
  # Imported here, so that the command line's errors do not wait for JAX to load.
  # pylint: disable=import-outside-toplevel
  from asic_jax import baseline, eval_run, train, visualize
  from asic_jax.data import loaders
  jobs = {
      'train': train.train_and_evaluate,
      'extract': loaders.extract_job,
      'eval': eval_run.evaluate_run,
      'baseline': baseline.baseline_run,
      'visualize': visualize.visualize_run,
  }
  if config.mode not in jobs:
    raise UserError(f'config.mode must be one of {sorted(jobs)}, got {config.mode!r}')
  config_lib.validate(config)
  return jobs[config.mode](config, workdir)
