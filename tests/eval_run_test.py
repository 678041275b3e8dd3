"""Evaluation jobs: eval from a checkpoint reproduces the training run's numbers; the
DINO+NN baseline under the same protocol; the Markdown tables hold the JSON's numbers."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from asic_jax import eval_run
from asic_jax.errors import UserError
from conftest import load_config


def test_eval_from_a_checkpoint_reproduces_the_run(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  printed = json.loads((workdir / 'eval' / 'results.json').read_text())
  (workdir / 'eval' / 'results.json').unlink()
  # The command line's config need not repeat the training overrides: the model comes
  # from the checkpoint's own config.
  config = load_config('base', **{'mode': 'eval'})
  results = eval_run.evaluate_run(config, workdir)
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
  results = eval_run.evaluate_run(load_config('base', **{'mode': 'eval', 'eval.step': 10}), workdir)
  assert results['checkpoint_step'] == 10


def test_dino_nn_baseline_writes_the_same_protocol(tiny_vit, tmp_path):
  config = load_config(
      'tiny', **{
          'mode': 'baseline',
          'features.model': str(tiny_vit),
          'baseline.img_size': 64,
          'eval.cycle_ks': (2,)
      })
  results = eval_run.baseline_run(config, tmp_path)
  assert results['method'] == 'dino_nn' and results['baseline']['stride'] == 4
  assert results['baseline']['bin_hierarchy'] == 2 and results['baseline']['img_size'] == 64
  assert results['num_pairs'] == 30 and results['threshold'] == 'bbox'
  assert set(results['pck']) == {f'{a:.2f}' for a in np.arange(1, 11) / 100}
  assert 0 <= results['pck']['0.10'] <= 1 and list(results['k_cycle']) == ['2']
  saved = json.loads((tmp_path / 'eval' / 'baseline.json').read_text())
  assert saved == results


def test_a_step_that_was_not_saved_is_a_clear_error(tiny_run):
  config = load_config('base', **{'mode': 'eval', 'eval.step': 7})
  with pytest.raises(UserError,
                     match='config.eval.step=7: no such checkpoint.*saved steps: 10, 20'):
    eval_run.evaluate_run(config, tiny_run)


def test_baseline_on_a_folder_with_keypoints_needs_no_extraction(tiny_vit, tmp_path, monkeypatch):
  from asic_jax.correspondences import extract  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(extract, 'add_correspondences',
                      lambda *a, **k: pytest.fail('the baseline ran the ASIC extraction'))
  rng = np.random.default_rng(0)
  for i in range(3):
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / f'p{i}.png')
  (tmp_path / 'keypoints.json').write_text(
      json.dumps({f'p{i}.png': [[10, 10, 1], [30, 20, 1]] for i in range(3)}))
  config = load_config(
      'folder', **{
          'mode': 'baseline',
          'data.path': str(tmp_path),
          'data.img_size': 32,
          'features.model': str(tiny_vit),
          'baseline.img_size': 32,
          'eval.cycle_ks': (2,)
      })
  results = eval_run.baseline_run(config, tmp_path / 'run')
  assert results['num_pairs'] == 6 and results['threshold'] == 'img'
  assert results['num_keypoints'] == 12
