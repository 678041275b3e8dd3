"""Two JAX processes on one CPU machine (loopback, gloo) train like one process."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from asic_jax import checkpoint, optim, train
from asic_jax import train_state
from conftest import ROOT, load_config

OVERRIDES = {
    'loss.recon': 0.0,
    'optim.eps': 1e-3,
    'train.num_steps': 3,
    'checkpoint.every': 3,
    'train.log_every': 1,
    'vis.enabled': False,
}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _final_params(workdir, config):
  ckpt = checkpoint.Checkpointer(workdir, read_only=True)
  template = train_state.init_state(config, optim.make_optimizer(config), config.data.img_size)
  step, state = ckpt.restore(template)
  assert step == 3
  return jax.device_get(state.params)


def _start_two(workdir, extra=lambda i: []):
  """`asic_jax.main` as processes 0 and 1 of one job on loopback (`extra(i)`: more flags)."""
  port = _free_port()
  command = [
      sys.executable, '-m', 'asic_jax.main', '--config=configs/tiny.py', f'--workdir={workdir}',
      '--config.distributed=True', f'--config.coordinator_address=127.0.0.1:{port}',
      '--config.num_processes=2'
  ]
  command += [f'--config.{k}={v}' for k, v in OVERRIDES.items()]
  env = dict(os.environ,
             JAX_PLATFORMS='cpu',
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir)
  env.pop('XLA_FLAGS', None)  # one CPU device per process: a 2-device mesh across processes
  processes = [
      subprocess.Popen(command + [f'--config.process_id={i}'] + extra(i),
                       cwd=ROOT,
                       env=env,
                       stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE,
                       text=True) for i in (0, 1)
  ]
  return processes, [p.communicate(timeout=600) for p in processes]


def test_two_processes_agree_with_a_single_process(tmp_path):
  processes, outputs = _start_two(tmp_path / 'two')
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]

  config = load_config('tiny', **OVERRIDES)
  train.train(config, tmp_path / 'one')  # one process, 2 local devices
  two, one = _final_params(tmp_path / 'two', config), _final_params(tmp_path / 'one', config)
  worst = max(np.abs(a - b).max() for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one)))
  assert worst < 1e-6, worst
  # Only process 0 wrote the metrics: one line per step, not two.
  lines = (tmp_path / 'two' / 'metrics.jsonl').read_text().splitlines()
  assert [json.loads(line)['step'] for line in lines] == [1, 2, 3]
  assert (tmp_path / 'two' / 'eval' / 'results.json').exists()


def test_processes_with_different_collections_stop_before_training(tmp_path):
  # Process 1's pseudo-matches differ (another outlier fraction), as GPU non-determinism in
  # a host's own extraction could make them: both processes stop with the same error.
  processes, outputs = _start_two(
      tmp_path / 'run', lambda i: [f'--config.data.synthetic.outlier_fraction={0.1 + 0.2 * i}'])
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 2, err[-3000:]
    assert 'error: processes [1] built a different collection' in err, err[-3000:]
  assert not (tmp_path / 'run' / 'checkpoints').exists()
