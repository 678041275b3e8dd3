"""Sweeps: the predefined ones expand to distinct runs; a tiny one runs and aggregates."""

import copy
import csv
import json
import pathlib

import numpy as np
import pytest

from asic_jax.data import collection as collection_lib
from asic_jax.errors import UserError
from asic_jax.evaluation import protocol
from launch import aggregate, sweep


@pytest.mark.parametrize('spec,count', [('configs/spair.py', 18),
                                        ('configs/spair.py:ablation', 18 * 6),
                                        ('configs/spair.py:presets', 36), ('configs/cub.py', 3),
                                        ('configs/cub.py:ablation', 18),
                                        ('configs/cub.py:presets', 6), ('configs/pfwillow.py', 4),
                                        ('configs/pfwillow.py:ablation', 24),
                                        ('configs/pfwillow.py:presets,released', 8),
                                        ('configs/pfwillow.py:cpu,baselines,seeds', 4 * 5),
                                        ('configs/tiny.py', 2)])
def test_dry_run_lists_distinct_runs(spec, count, tmp_path, capsys):
  plan = sweep.main([f'--config={spec}', f'--root={tmp_path}', '--dry_run'])
  assert len(plan) == count and len({p['workdir'] for p in plan}) == count
  assert capsys.readouterr().out.startswith(f'{count} runs under')
  assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_seeds_train_three_runs_and_the_baselines_once(tmp_path):
  plan = sweep.main([
      '--config=configs/pfwillow.py:cpu,baselines,seeds,recommended', f'--root={tmp_path}',
      '--dry_run'
  ])
  duck = [p for p in plan if p['config'].data.category == 'duck']
  trained = [p for p in duck if p['config'].mode == 'train']
  assert sorted(p['config'].seed for p in trained) == [0, 1, 2]
  baselines = [p for p in duck if p['config'].mode == 'baseline']
  assert sorted(p['config'].baseline.method for p in baselines) == ['mls', 'nn']
  assert all(p['config'].seed == 0 for p in baselines)
  assert all(p['config'].features.orient and p['config'].eval.congeal_steps == 5 for p in duck)


def test_ablation_and_presets_configure_each_run(tmp_path):
  plan = sweep.main(['--config=configs/cub.py:ablation', f'--root={tmp_path}', '--dry_run'])
  no_recon = [p for p in plan if p['overrides'].get('variant') == 'no_recon']
  assert len(no_recon) == 3
  assert all(p['config'].loss.recon == 0 and p['config'].loss.mask == 0 for p in no_recon)
  assert sorted(p['config'].data.category for p in no_recon) == [1, 2, 3]
  plan = sweep.main(['--config=configs/pfwillow.py:presets', f'--root={tmp_path}', '--dry_run'])
  released = [p['config'] for p in plan if p['overrides']['preset'] == 'released']
  assert all(c.preset == 'released' and c.loss.kp == 30.0 for c in released)
  commands = sweep.main([
      '--config=configs/pfwillow.py:presets', f'--root={tmp_path}', '--print_commands',
      '--config.train.num_steps=7'
  ])
  assert "--config=configs/pfwillow.py:released" in commands[1]['command']
  assert '--config.train.num_steps=7' in commands[1]['command']


def test_bad_override_is_a_clear_error(tmp_path):
  with pytest.raises(UserError, match="no config field 'train.num_stepz'"):
    sweep.main([
        '--config=configs/tiny.py', f'--root={tmp_path}', '--dry_run', '--config.train.num_stepz=3'
    ])


def test_tiny_sweep_runs_and_aggregates_into_its_numbers(tmp_path):
  args = [
      '--config=configs/tiny.py', f'--root={tmp_path}', '--config.loss.recon=0.0',
      '--config.optim.eps=0.001', '--config.train.num_steps=4', '--config.checkpoint.every=4',
      '--config.train.log_every=1', '--config.vis.enabled=False'
  ]
  plan = sweep.main(args)
  records = aggregate.main([f'--root={tmp_path}'])
  assert len(records) == 2
  table = (tmp_path / 'summary.md').read_text()
  with (tmp_path / 'summary.csv').open() as f:
    rows = {row['workdir']: row for row in csv.DictReader(f)}
  values = []
  for p in plan:
    results = json.loads((pathlib.Path(p['workdir']) / 'eval' / 'results.json').read_text())
    row = rows[p['workdir']]
    assert float(row['pck@0.10']) == pytest.approx(100 * results['pck']['0.10'])
    assert float(row['4-cypck@0.10']) == pytest.approx(100 * results['k_cycle']['4']['pck']['0.10'])
    # The sweep's own overrides name its variant (loss weights and eval/vis settings aside).
    assert row['variant'] == ('optim.eps=0.001,train.num_steps=4,checkpoint.every=4,'
                              'train.log_every=1')
    assert int(row['seed']) == p['overrides']['seed']
    values.append(100 * results['pck']['0.10'])
  # Runs that differ only in their seed share a cell: the mean and the sample deviation.
  assert f'{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}' in table
  # A finished run is skipped when the sweep is started again: nothing is rewritten.
  logs = [pathlib.Path(p['workdir']) / 'metrics.jsonl' for p in plan]
  before = [(log.read_text(), log.stat().st_mtime_ns) for log in logs]
  again = sweep.main(args)
  assert [p['workdir'] for p in again] == [p['workdir'] for p in plan]
  assert [(log.read_text(), log.stat().st_mtime_ns) for log in logs] == before


def _fake_run(workdir: pathlib.Path,
              dataset: str,
              category: str,
              pck: float,
              seed: int = 0) -> None:
  (workdir / 'eval').mkdir(parents=True)
  (workdir / 'config.json').write_text(
      json.dumps(dict(seed=seed, data=dict(name=dataset, category=category))))
  (workdir / 'eval' / 'results.json').write_text(
      json.dumps(dict(method='asic', preset='paper', pck={
          '0.10': pck,
          '0.05': pck / 2
      })))


def test_aggregate_reads_scheduler_runs_by_their_workdir_names(tmp_path, capsys):
  # PF-WILLOW mixes SPair category names (car, motorbike) with others (duck, winebottle);
  # runs started from `--print_commands` have no sweep.json: the variant is in the name.
  plan = sweep.main(['--config=configs/pfwillow.py:ablation', f'--root={tmp_path}', '--dry_run'])
  scores = {}
  for i, p in enumerate(p for p in plan if p['overrides']['variant'] in ('complete', 'no_kp')):
    scores[p['workdir']] = 0.5 + 0.01 * i
    _fake_run(pathlib.Path(p['workdir']), 'pfwillow', p['overrides']['data.category'],
              scores[p['workdir']])
  records = aggregate.main([f'--root={tmp_path}'])
  assert {r['variant'] for r in records} == {'complete', 'no_kp'}
  assert {r['workdir']: r['pck@0.10'] / 100 for r in records} == pytest.approx(scores)
  table = (tmp_path / 'summary.md').read_text()
  assert '| method | preset | variant | car | duck | motorbike | winebottle | mean |' in table
  rows = [line for line in table.splitlines() if line.startswith('| asic | paper | no_kp |')]
  mean = 100 * sum(v for w, v in scores.items() if 'no_kp' in w) / 4
  assert len(rows) == 2 and rows[0].endswith(f'| {mean:.1f} |')  # PCK@0.10 and @0.05 tables
  assert 'warning' not in capsys.readouterr().err


def test_aggregate_puts_baselines_beside_the_runs_they_compare_with(tmp_path):
  # A baseline's workdir (`mode=baseline` in the `baselines` sweep) holds only eval/: its
  # category comes from its name, its dataset from the collection it scored.
  plan = sweep.main(['--config=configs/pfwillow.py:baselines', f'--root={tmp_path}', '--dry_run'])
  duck = [p for p in plan if p['overrides']['data.category'] == 'duck']
  for p in duck:
    workdir = pathlib.Path(p['workdir'])
    if p['config'].mode == 'train':
      _fake_run(workdir, 'pfwillow', 'duck', 0.6)
      continue
    method = f"vgg16_{p['config'].baseline.method}"
    (workdir / 'eval').mkdir(parents=True)
    (workdir / 'eval' / f'baseline_{method}.json').write_text(
        json.dumps(dict(collection='pfwillow_duck', method=method, pck={
            '0.10': 0.5,
            '0.05': 0.2
        })))
  records = aggregate.main([f'--root={tmp_path}'])
  assert sorted((r['dataset'], r['category'], r['method']) for r in records) == [
      ('pfwillow', 'duck', 'asic'), ('pfwillow', 'duck', 'vgg16_mls'),
      ('pfwillow', 'duck', 'vgg16_nn')
  ]
  table = (tmp_path / 'summary.md').read_text()
  assert '?' not in table and '| vgg16_nn |  | default | 50.0 | 50.0 |' in table


def test_aggregate_tells_sweeps_apart_by_their_command_line_overrides(tmp_path, capsys):
  # The same sweep with `--config.features.orient=False` for every run: its runs carry the same
  # own overrides as the plain sweep's, so only the sweep's folder says they are another variant.
  spec = '--config=configs/pfwillow.py:cpu,recommended,seeds'
  for extra, pck in (([], 0.5), (['--config.features.orient=False'], 0.7)):
    for p in sweep.main([spec, f'--root={tmp_path}', '--dry_run', *extra]):
      if p['overrides']['data.category'] == 'duck':
        _fake_run(pathlib.Path(p['workdir']), 'pfwillow', 'duck', pck, p['config'].seed)
  records = aggregate.main([f'--root={tmp_path}'])
  assert sorted({(r['variant'], r['pck@0.10']) for r in records}) == [('default', 50.0),
                                                                      ('features.orient=False',
                                                                       70.0)]
  assert len(records) == 6 and 'warning' not in capsys.readouterr().err
  table = (tmp_path / 'summary.md').read_text()
  assert '| asic | paper | features.orient=False | 70.0 ± 0.0 | 70.0 ± 0.0 |' in table


def test_aggregate_files_a_cub_baseline_under_cub_by_what_its_results_say(tmp_path):
  # CUB's collection for class 1 is 'cub_001': nothing in that name ends with '_1', so the
  # dataset must come from the results file itself, as `protocol.score` writes it.
  plan = sweep.main(['--config=configs/cub.py:baselines', f'--root={tmp_path}', '--dry_run'])
  first = [p for p in plan if p['overrides']['data.category'] == 1]
  n = 4
  points = np.tile(np.asarray([[[20.0, 20.0], [40.0, 30.0]]], np.float32), (n, 1, 1))
  visible, lengths = np.ones((n, 2), bool), np.full(n, 64.0, np.float32)
  collection = collection_lib.Collection(name='cub_001',
                                         images=np.zeros((n, 64, 64, 3), np.float32),
                                         names=tuple('abcd'),
                                         keypoints=points,
                                         visibility=visible,
                                         thresholds=lengths,
                                         eval_pairs=collection_lib.eval_pairs_from_keypoints(
                                             points, visible, lengths))
  for p in first:
    workdir = pathlib.Path(p['workdir'])
    if p['config'].mode == 'train':
      _fake_run(workdir, 'cub', 1, 0.6)
      continue
    method = f"vgg16_{p['config'].baseline.method}"
    results = protocol.score(collection, lambda src, trg, pts: points[trg], p['config'])
    assert (results['dataset'], results['category']) == ('cub', '1')
    (workdir / 'eval').mkdir(parents=True)
    (workdir / 'eval' / f'baseline_{method}.json').write_text(
        json.dumps(dict(results, method=method)))
  records = aggregate.main([f'--root={tmp_path}'])
  assert sorted(
      (r['dataset'], r['category'], r['method']) for r in records) == [('cub', '1', 'asic'),
                                                                       ('cub', '1', 'vgg16_mls'),
                                                                       ('cub', '1', 'vgg16_nn')]
  table = (tmp_path / 'summary.md').read_text()
  assert '?' not in table and '| vgg16_nn |  | default | 100.0 | 100.0 |' in table


def test_sweeps_of_other_collections_or_overrides_get_other_workdirs(tmp_path):
  dirs = {
      sweep.main([f'--config={spec}', f'--root={tmp_path}', '--dry_run', *extra])[0]['workdir']
      for spec, extra in [('configs/samurai.py:duck',
                           []), ('configs/samurai.py:car',
                                 []), ('configs/tiny.py',
                                       []), ('configs/tiny.py', ['--config.train.num_steps=9'])]
  }
  assert len(dirs) == 4
  # Settings that do not define a run (mode, eval.*, vis.*) keep the training sweep's
  # workdirs: `--config.mode=eval` evaluates the runs it left.
  plain, evaluation = (sweep.main(
      ['--config=configs/tiny.py', f'--root={tmp_path}', '--dry_run', *extra])
                       for extra in ([], ['--config.mode=eval', '--config.vis.enabled=False']))
  assert [p['workdir'] for p in plain] == [p['workdir'] for p in evaluation]


def test_a_workdir_of_another_config_is_an_error_not_overwritten(tmp_path):
  """A workdir whose sweep record names another config is compared with what its run saved
  (`restore.check_same_run`, strict): nothing to compare with, or a setting a resume may not
  change (the learning rate), is refused before anything is written."""
  plan = sweep.main(['--config=configs/tiny.py', f'--root={tmp_path}', '--dry_run'])
  workdir, config = pathlib.Path(plan[0]['workdir']), plan[0]['config']
  marker = workdir / 'sweep.json'
  marker.parent.mkdir(parents=True)
  marker.write_text(json.dumps(dict(config_hash='0123456789ab', finished=True)))
  with pytest.raises(UserError, match='holds another run, without a checkpoint or a config.json'):
    sweep.main(['--config=configs/tiny.py', f'--root={tmp_path}'])
  saved = copy.deepcopy(config)
  saved.optim.lr *= 2
  (workdir / 'config.json').write_text(saved.to_json())
  with pytest.raises(UserError, match=r'holds another run .*optim\.lr.*give another --root'):
    sweep.main(['--config=configs/tiny.py', f'--root={tmp_path}'])
  assert json.loads(marker.read_text())['config_hash'] == '0123456789ab'
  assert sorted(p.name for p in workdir.iterdir()) == ['config.json', 'sweep.json']
