"""The benchmark scripts stay runnable: each benchmark at a tiny shape, its records checked."""

from asic_jax.models import dino
import json
import os
import subprocess
import sys

import numpy as np
import scipy.signal

from benchmarks import common, conv_forms, evaluation, extraction, profile_step, run_all, train_step


def test_train_step_benchmark_at_the_tiny_shape():
  record = train_step.bench('tiny', dtype='float32', steps=1)
  assert (record['batch'], record['img'], record['images'], record['pairs']) == (4, 32, 6, 15)
  assert record['ms_per_step'] > 0 and record['compile_s'] > 0
  assert record['xla_memory_gb'] > 0


def test_named_shapes_change_one_thing():
  released = train_step.shape_config('released', 'float32')
  assert train_step.shape_config('batch=8', 'float32').train.batch_size == 8
  img = train_step.shape_config('img=256', 'float32')
  assert (img.data.img_size, img.loss.recon_size, img.model.grid_size) == (256, 128, 256)
  many = train_step.shape_config('images=300', 'float32')
  assert many.data.synthetic.num_images == 300 and many.pairs.max_per_image == 10
  assert released.pairs.max_per_image == 0
  cpu = train_step.shape_config('cpu', 'float32')
  assert (cpu.data.img_size, cpu.train.batch_size, cpu.loss.recon_size) == (128, 8, 32)
  assert cpu.model.channel_multiplier == 0.25 and cpu.data.synthetic.matches_per_pair == 300


def test_profile_attributes_the_step_to_its_parts(capsys):
  profile_step.main(['--shape=tiny', '--steps=1', '--top=3'])
  out = capsys.readouterr().out
  for part in ('U-Net forward', 'U-Net backward', 'perceptual forward'):
    assert f'| {part} |' in out
  assert profile_step.part('jit(step)/transpose(jvp(Asic))/align/up1/conv') == 'U-Net backward'


def test_released_step_driver_refuses_a_missing_checkout(tmp_path):
  """The released-code driver (its own virtualenv) says in one line what it needs."""
  env = dict(os.environ, ASIC_RELEASED_CODE=str(tmp_path / 'nowhere'))
  done = subprocess.run([sys.executable, '-m', 'benchmarks.released_step', '--shapes=cpu'],
                        cwd=common.ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        check=False)
  assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
  assert 'ASIC_RELEASED_CODE' in done.stderr


def test_side_by_side_table_divides_ours_by_theirs():
  """Medians over the rounds, their ratio, and each round's own ratio."""
  record = dict(shape='cpu',
                batch=8,
                img=128,
                recon=32,
                widths='16..256',
                threads=2,
                implementation='released (PyTorch x)',
                kornia='0.9.0',
                ours_ms=[500.0, 700.0, 450.0],
                released_ms=[625.0, 500.0, 600.0])
  lines = run_all._side_by_side(dict(side_by_side=dict(date='d', rounds=3, records=[record])))
  assert '| cpu | 8 | 128 | 32 | 16..256 | 500 | 600 | 0.83 | 0.80, 1.40, 0.75 |' in lines


def test_side_by_side_keeps_the_earlier_runs(tmp_path):
  """A new run keeps the stored ones (oldest first) and the page lists every run's ratio."""
  record = lambda ours, theirs: dict(shape='cpu', ours_ms=[ours], released_ms=[theirs])
  stored = tmp_path / 'side_by_side.json'
  assert run_all._earlier_runs(stored) == []
  stored.write_text(
      json.dumps(
          dict(date='b',
               rounds=1,
               records=[record(600.0, 500.0)],
               earlier=[dict(date='a', records=[record(450.0, 500.0)])])))
  earlier = run_all._earlier_runs(stored)
  assert [run['date'] for run in earlier] == ['a', 'b']
  newest = dict(date='c', rounds=1, records=[dict(record(1000.0, 800.0), batch=8, img=128,
                                                  recon=32, widths='16..256', threads=2,
                                                  implementation='x', kornia='y')],
                earlier=earlier)
  lines = run_all._side_by_side(dict(side_by_side=newest))
  assert any('All 3 runs' in line and '(a, b, c;' in line and
             '`cpu` 0.90, 1.20, 1.25 (0.90-1.25)' in line for line in lines), lines


def test_extraction_benchmark_pads_the_last_batch(tiny_vit):
  arch, params = dino.load_vit(str(tiny_vit))
  record = extraction.bench(arch, params, size=32, stride=8, images=3, batch=2)
  assert record['grid'] == '4x4' and record['pairs'] == 3  # 1 + (32 - 8) / 8 patches a side
  assert record['s_per_image'] > 0 and record['total_s'] >= record['mutual_nn_s']


def test_evaluation_benchmark_counts_every_transfer():
  record = evaluation.bench(4, 32)
  assert record['pairs'] == 12 and record['score_s'] > 0


def test_markdown_table():
  table = common.markdown_table([{'a': 1.23456, 'b': None}], [('a', 'A'), ('b', 'B')])
  assert table.splitlines() == ['| A | B |', '|---|---|', '| 1.23 | – |']


def test_conv_forms_are_one_convolution():
  """The forms `benchmarks/conv_forms.py` times compute the same 'same' 3 x 3 convolution
  (against scipy's correlation, channel by channel)."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  w = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
  expected = np.zeros((2, 5, 6, 4))
  for b in range(2):
    for o in range(4):
      expected[b, :, :, o] = sum(
          scipy.signal.correlate2d(x[b, :, :, c], w[:, :, c, o], mode='same') for c in range(3))
  for name, conv in conv_forms.jax_forms(('xla', 'im2col', 'shifts')).items():
    np.testing.assert_allclose(np.asarray(conv(x, w)), expected, atol=1e-4, err_msg=name)
