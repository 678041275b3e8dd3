"""Evaluation jobs: eval from a checkpoint reproduces the training run's numbers; the
Markdown tables hold the JSON's numbers."""

import json
import shutil

import numpy as np
import pytest

from asic_jax.data import collection as collection_lib
from asic_jax.errors import UserError
from asic_jax.evaluation import protocol
from asic_jax.jobs import eval as eval_job
from conftest import load_config


def test_eval_from_a_checkpoint_reproduces_the_run(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  printed = json.loads((workdir / 'eval' / 'results.json').read_text())
  (workdir / 'eval' / 'results.json').unlink()
  # The command line's config need not repeat the training overrides: the model comes
  # from the checkpoint's own config.
  config = load_config('base', **{'mode': 'eval'})
  results = eval_job.run(config, workdir)
  assert results['checkpoint_step'] == printed['checkpoint_step'] == 20
  assert results['config_hash'] == printed['config_hash']
  for key in ('pck', 'pck_per_pair', 'num_pairs', 'num_keypoints', 'threshold'):
    assert results[key] == printed[key], key
  for k in ('2', '3', '4'):
    assert results['k_cycle'][k] == printed['k_cycle'][k]
  assert json.loads((workdir / 'eval' / 'results.json').read_text()) == results
  table = (workdir / 'eval' / 'results.md').read_text()
  assert f'{100 * results["pck"]["0.10"]:.1f}' in table
  assert f'{100 * results["k_cycle"]["4"]["pck"]["0.10"]:.1f}' in table


def test_an_earlier_step_can_be_evaluated(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  results = eval_job.run(load_config('base', **{'mode': 'eval', 'eval.step': 10}), workdir)
  assert results['checkpoint_step'] == 10


def test_a_step_that_was_not_saved_is_a_clear_error(tiny_run):
  config = load_config('base', **{'mode': 'eval', 'eval.step': 7})
  with pytest.raises(UserError,
                     match='config.eval.step=7: no such checkpoint.*saved steps: 10, 20'):
    eval_job.run(config, tiny_run)


def test_k_cycles_use_the_object_boxes_as_the_paper_does():
  """CUB scores PCK with alpha * S but paper §4.4 scores k-CyPCK with alpha_bbox: a transfer
  5 px off at every hop is correct at 0.10 under S = 64 (6.4 px) and wrong under the
  32-px boxes (3.2 px)."""
  n, k = 4, 3
  rng = np.random.default_rng(0)
  keypoints = rng.uniform(16, 48, (n, k, 2)).astype(np.float32)
  visibility = np.ones((n, k), bool)
  lengths = np.full(n, 64.0, np.float32)
  collection = collection_lib.Collection(
      name='cub-like',
      images=np.zeros((n, 64, 64, 3), np.float32),
      names=tuple('abcd'),
      keypoints=keypoints,
      visibility=visibility,
      thresholds=lengths,
      eval_pairs=collection_lib.eval_pairs_from_keypoints(keypoints, visibility, lengths),
      threshold_kind='img',
      bboxes=np.asarray([[10, 10, 42, 30]] * n, np.float32))  # max side 32
  off_by_five = lambda src, trg, points: keypoints[trg] + np.asarray([5.0, 0.0], np.float32)
  config = load_config('base', **{'eval.cycle_ks': (2, 3)})
  results = protocol.score(collection, off_by_five, config)
  assert results['pck']['0.10'] == 1.0 and results['threshold'] == 'img'
  for cycle in results['k_cycle'].values():
    assert cycle['threshold'] == 'bbox' and cycle['pck']['0.10'] == 0.0
    assert cycle['pck']['0.02'] == 0.0 and cycle['pck']['0.05'] == 0.0
