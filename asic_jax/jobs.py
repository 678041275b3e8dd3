"""The jobs `config.mode` selects, by name: one dispatcher for the command line and sweeps."""

import pathlib

import ml_collections

from asic_jax import config_lib
from asic_jax.errors import UserError


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
  """Runs the job `config.mode` names in `workdir`; returns what that job returns."""
  # Imported here, so that the command line's errors do not wait for JAX to load.
  # pylint: disable=import-outside-toplevel
  from asic_jax import eval_run, train, visualize
  from asic_jax.data import loaders
  jobs = {
      'train': train.train_and_evaluate,
      'extract': loaders.extract_job,
      'eval': eval_run.evaluate_run,
      'baseline': eval_run.baseline_run,
      'visualize': visualize.visualize_run,
  }
  if config.mode not in jobs:
    raise UserError(f'config.mode must be one of {sorted(jobs)}, got {config.mode!r}')
  config_lib.validate(config)
  return jobs[config.mode](config, workdir)
