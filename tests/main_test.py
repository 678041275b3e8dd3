"""The command line: the README's main command, its outputs, and one-line errors."""

import json
import subprocess
import sys

import pytest

from asic_jax import objective
from asic_jax.errors import UserError
from conftest import ROOT, load_config


def test_readme_command_trains_offline_and_writes_its_outputs(tiny_run):
  records = [json.loads(line) for line in (tiny_run / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == [5, 10, 15, 20]  # log_every 5, 20 steps
  for record in records:
    assert set(objective.TERMS) | {'total', 'lr', 'grad_norm', 'steps_per_s'} <= set(record)
    assert record['total'] == pytest.approx(sum(record[t] for t in objective.TERMS), rel=1e-5)
    assert record['lr'] == pytest.approx(1e-3)
    assert record['steps_per_s'] > 0
  assert sorted(p.name for p in (tiny_run / 'checkpoints').iterdir()) == ['10', '20']
  config = json.loads((tiny_run / 'config.json').read_text())
  assert config['data']['img_size'] == 32 and config['loss']['perceptual_weights'] == 'random'
  results = json.loads((tiny_run / 'eval' / 'results.json').read_text())
  assert 0.0 <= results['pck']['0.10'] <= 1.0
  assert results['num_pairs'] == 30 and results['checkpoint_step'] == 20  # 6 images, ordered


@pytest.mark.parametrize('args,message', [
    (['--config.train.num_stepz=3'], "unknown config field in the command line: 'num_stepz'"),
    (['--config.train.num_steps=abc'], 'invalid literal for int()'),
    (['--config.mode=fly'], "config.mode must be one of"),
    (['--config.data.name=nowhere'], "config.data.name must be one of"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
  command = [
      sys.executable, '-m', 'asic_jax.main', '--config=configs/tiny.py', f'--workdir={tmp_path}'
  ] + args
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  lines = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
  assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('spec,message', [
    ('configs/spair.py:dogg', "--config: unknown SPair-71k category 'dogg'"),
    ('configs/cub.py:7', '--config: CUB class must be one of 1, 2, 3'),
])
def test_bad_config_arg_is_one_line(tmp_path, spec, message):
  result = subprocess.run(
      [sys.executable, '-m', 'asic_jax.main', f'--config={spec}', f'--workdir={tmp_path}'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300)
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert result.stderr.startswith(f'error: {message}')


def test_missing_dataset_names_the_path(tmp_path):
  result = subprocess.run([
      sys.executable, '-m', 'asic_jax.main', '--config=configs/spair.py', f'--workdir={tmp_path}',
      f'--config.data.root={tmp_path / "none"}'
  ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert f'SPair-71k not found: expected {tmp_path / "none" / "SPair-71k"}' in result.stderr
  assert 'cvlab.postech.ac.kr' in result.stderr


def test_missing_config_file_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'asic_jax.main', '--config=configs/nope.py', f'--workdir={tmp_path}'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300)
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert "error: cannot load --config=configs/nope.py" in result.stderr


def test_readme_run_writes_figures_tensorboard_and_report(tiny_run):
  figures = {p.stem for p in (tiny_run / 'figures').glob('*.png')}
  assert {
      'colour_wheel', 'colour_maps', 'dense_warps', 'canonical_grid', 'keypoint_transfer',
      'pseudo_matches', 'parts_and_masks'
  } <= figures
  assert list((tiny_run / 'tensorboard').glob('events.out.tfevents.*'))
  assert (tiny_run / 'report' / 'index.html').is_file()


def test_every_mode_is_dispatched():
  from asic_jax import jobs  # pylint: disable=import-outside-toplevel
  config = load_config('tiny', mode='nonsense')
  with pytest.raises(UserError, match=r"\['baseline', 'eval', 'extract', 'train', 'visualize'\]"):
    jobs.run(config, '/tmp/unused')
