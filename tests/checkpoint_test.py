"""Checkpoints: a damaged latest one is set aside (never deleted) and the newest that reads
is used, by training and by evaluation alike."""

import logging
import shutil

import pytest

from asic_jax import checkpoint, eval_run, train
from asic_jax.errors import UserError
from conftest import load_config


def _damage(workdir, step):
  """Deletes the largest data file of a checkpoint, as a failing disk or copy would."""
  files = [p for p in (workdir / 'checkpoints' / str(step) / 'state').rglob('*') if p.is_file()]
  max(files, key=lambda p: p.stat().st_size).unlink()


def test_a_damaged_latest_checkpoint_falls_back_with_a_warning(tiny_run, tmp_path, caplog):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  _damage(workdir, 20)
  caplog.set_level(logging.INFO, logger='asic_jax')
  # Evaluation reads the newest that reads, and leaves the workdir's checkpoints as they are.
  results = eval_run.evaluate_run(load_config('tiny', mode='eval'), workdir)
  assert results['checkpoint_step'] == 10
  assert any('Checkpoint' in r.message and '/20 does not read' in r.message and 'skipped' in
             r.message for r in caplog.records), caplog.text
  assert (workdir / 'checkpoints' / '20').is_dir()
  # Training resumes from step 10, moving 20 aside (kept), and saves a fresh 20.
  caplog.clear()
  train.train_and_evaluate(load_config('tiny', **{'vis.enabled': False}), workdir)
  aside = workdir / checkpoint.ASIDE / '20'
  assert aside.is_dir() and any(aside.rglob('*'))
  assert sorted(checkpoint.Checkpointer(workdir, read_only=True).all_steps()) == [10, 20]
  warned = [r.message for r in caplog.records if 'does not read' in r.message]
  assert len(warned) == 1 and str(aside) in warned[0] and 'using the one before' in warned[0]
  assert any('Resumed from' in r.message and 'at step 10' in r.message for r in caplog.records)


def test_an_unreadable_explicit_step_is_an_error(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  _damage(workdir, 10)
  with pytest.raises(UserError, match=r'config.eval.step=10: the checkpoint in .* does not read'):
    eval_run.evaluate_run(load_config('tiny', **{'mode': 'eval', 'eval.step': 10}), workdir)
