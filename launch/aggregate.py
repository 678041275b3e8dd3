"""Gathers every `eval/results.json` (and `eval/baseline_*.json`) under a root into tables.

  python -m launch.aggregate --root=runs              # writes runs/summary.md, runs/summary.csv

One table per dataset and metric (PCK@0.10, PCK@0.05, k-CyPCK@0.10 for each k): a row per
method and run variant, a column per category and their mean (the unweighted mean over
the categories present), with the paper's numbers (DESIGN §5, paper Tables 1-3) in rows
beside ours. Runs that differ only in `seed` share a cell: its mean over the seeds ± their
sample standard deviation (the mean column: the spread of each seed's category mean). The
CSV holds one row per evaluated run with every headline number.
"""

import argparse
import csv
import json
import pathlib
import sys

from asic_jax import config_lib
from launch import sweep as sweep_lib

# Paper Table 1 (SPair-71k, PCK@0.10 per category, and its "All").
_SPAIR = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
          'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'train', 'tvmonitor')
PAPER = {
    ('spair', 'asic', 'pck@0.10'):
        dict(zip(_SPAIR, (57.9, 25.2, 68.1, 24.7, 35.4, 28.4, 30.9, 54.8, 21.6, 45.0, 47.2, 39.9,
                          26.2, 48.8, 14.5, 24.5, 49.0, 24.6)),
             mean=36.9),
    ('spair', 'dino_nn', 'pck@0.10'):
        dict(zip(_SPAIR, (57.2, 24.1, 67.4, 24.5, 26.8, 29.0, 27.1, 52.1, 15.7, 42.4, 43.3, 30.1,
                          23.2, 40.7, 16.6, 24.1, 31.0, 24.9)),
             mean=33.3),
    # Table 2: means over CUB's 3 classes and PF-WILLOW's 4 categories.
    ('cub', 'asic', 'pck@0.10'):
        dict(mean=75.9),
    ('cub', 'asic', 'pck@0.05'):
        dict(mean=57.9),
    ('cub', 'dino_nn', 'pck@0.10'):
        dict(mean=68.3),
    ('cub', 'dino_nn', 'pck@0.05'):
        dict(mean=52.8),
    ('pfwillow', 'asic', 'pck@0.10'):
        dict(mean=76.3),
    ('pfwillow', 'asic', 'pck@0.05'):
        dict(mean=53.0),
    ('pfwillow', 'dino_nn', 'pck@0.10'):
        dict(mean=60.1),
    ('pfwillow', 'dino_nn', 'pck@0.05'):
        dict(mean=40.1),
}
# Table 3: the loss ablation (mean PCK@0.10).
PAPER_ABLATION = {
    'cub':
        dict(complete=75.9, no_kp=22.8, no_tv=43.9, no_equi=64.8, no_recon=73.3, no_parts=73.6),
    'pfwillow':
        dict(complete=76.3, no_kp=36.2, no_tv=40.4, no_equi=65.6, no_recon=74.2, no_parts=73.5),
}
# The released code's SPair mean (its README), DESIGN §5.
RELEASED_SPAIR_MEAN = 36.5
METRICS = ('pck@0.10', 'pck@0.05')


def _read(path: pathlib.Path) -> dict:
  return json.loads(path.read_text()) if path.is_file() else {}


def collect(root: str | pathlib.Path) -> list[dict]:
  """One record per evaluation file under `root`, with the run's dataset and variant."""
  records = []
  for path in sorted(pathlib.Path(root).rglob('eval/*.json')):
    if path.stem != 'results' and not path.stem.startswith('baseline'):
      continue
    run = path.parent.parent
    results = _read(path)
    config = _read(run / 'config.json')
    # Runs a scheduler started from `--print_commands` have no sweep.json: their name says.
    sweep = _read(run / 'sweep.json').get('overrides') or sweep_lib.parse_label(run.name)
    # The command line's overrides of the whole sweep are in its folder's name:
    # `--config.features.orient=False` makes another variant.
    sweep = dict(sweep_lib.sweep_overrides(run.parent.name), **sweep)
    data = config.get('data', {})
    # A run's variant: its own overrides but the category, loss weights (an ablation names
    # them) and settings that do not define a run (mode=baseline, baseline.method, ...).
    variant = sweep.get('variant') or ','.join(
        f'{k}={v}' for k, v in sweep.items() if k not in ('data.category', 'variant', 'seed')
        and not k.startswith('loss.') and not config_lib.is_eval_setting(k)) or 'default'
    # A baseline's workdir holds only eval/: its results file names its dataset and category.
    # Files written before they did: the category from the sweep's name, the dataset from the
    # collection's ('pfwillow_car' for car).
    collection = results.get('collection', '?')
    category = str(
        data.get('category') or results.get('category') or sweep.get('data.category') or collection)
    dataset = data.get('name') or results.get('dataset') or (
        collection[:-len(category) - 1] if collection.endswith(f'_{category}') else '?')
    record = dict(dataset=dataset,
                  seed=config.get('seed', 0),
                  category=category,
                  method=results.get('method', path.stem),
                  preset=results.get('preset', ''),
                  variant=variant,
                  num_pairs=results.get('num_pairs'),
                  num_keypoints=results.get('num_keypoints'),
                  checkpoint_step=results.get('checkpoint_step'),
                  config_hash=results.get('config_hash', ''),
                  threshold=results.get('threshold'),
                  workdir=str(run))
    for alpha in ('0.10', '0.05'):
      value = results.get('pck', {}).get(alpha)
      record[f'pck@{alpha}'] = None if value is None else 100 * value
    for k, cycle in results.get('k_cycle', {}).items():
      # Without keypoints the k-cycle score is self-consistency, not k-CyPCK: its own column.
      name = 'cypck' if 'CyPCK' in cycle.get('metric', 'CyPCK') else 'cycle-consistency'
      record[f'{k}-{name}@0.10'] = 100 * cycle['pck']['0.10']
    records.append(record)
  return records


def _cell(value) -> str:
  return '–' if value is None else f'{value:.1f}'


def _spread_cell(values: list[float]) -> str:
  """One value, or the mean ± the sample standard deviation of several (seeds)."""
  if not values:
    return '–'
  mean = sum(values) / len(values)
  if len(values) == 1:
    return f'{mean:.1f}'
  std = (sum((v - mean)**2 for v in values) / (len(values) - 1))**0.5
  return f'{mean:.1f} ± {std:.1f}'


def _category_order(dataset: str):
  """SPair's categories in the paper's order; others alphabetically (numbers as numbers)."""
  if dataset == 'spair':
    return lambda c: (c not in _SPAIR, _SPAIR.index(c) if c in _SPAIR else 0, c)
  return lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c)


def _warn_duplicates(records: list[dict]) -> None:
  """Two runs in one table cell would hide one of them: say which."""
  seen = {}
  for r in records:
    key = (r['dataset'], r['method'], r['preset'], r['variant'], r['category'], r['seed'])
    if key in seen:
      print(
          f'warning: {seen[key]} and {r["workdir"]} are the same (dataset, method, preset, '
          f'variant, category, seed) {key}; the tables show the second, the CSV both',
          file=sys.stderr)
    seen[key] = r['workdir']


def tables(records: list[dict]) -> str:
  """Markdown: per dataset and metric, rows of (method, variant) by categories and mean."""
  out = ['# Results', '']
  metrics = list(METRICS) + sorted(
      {k for r in records for k in r if k.endswith(('cypck@0.10', 'cycle-consistency@0.10'))})
  for dataset in sorted({r['dataset'] for r in records}):
    rows = [r for r in records if r['dataset'] == dataset]
    categories = sorted({r['category'] for r in rows}, key=_category_order(dataset))
    groups = sorted({(r['method'], r['preset'], r['variant']) for r in rows})
    for metric in metrics:
      if not any(r.get(metric) is not None for r in rows):
        continue
      out += [
          f'## {dataset}: {metric.upper()}', '',
          '| method | preset | variant | ' + ' | '.join(categories) + ' | mean |',
          '|---|---|---|' + '---|' * (len(categories) + 1)
      ]
      for method, preset, variant in groups:
        by_seed = {}  # {category: {seed: value}}
        for r in rows:
          if (r['method'], r['preset'], r['variant']) == (method, preset,
                                                          variant) and r.get(metric) is not None:
            by_seed.setdefault(r['category'], {})[r['seed']] = r[metric]
        cells = [_spread_cell(list(by_seed.get(c, {}).values())) for c in categories]
        present = [c for c in categories if c in by_seed]
        seeds = set.intersection(*(set(by_seed[c]) for c in present)) if present else set()
        # Each seed's mean over the categories, where every category has that seed.
        means = [sum(by_seed[c][s] for c in present) / len(present) for s in sorted(seeds)]
        if not means and present:
          means = [sum(sum(v.values()) / len(v) for v in by_seed.values()) / len(by_seed)]
        out.append(f'| {method} | {preset} | {variant} | ' + ' | '.join(cells) +
                   f' | {_spread_cell(means)} |')
      for method in ('asic', 'dino_nn'):
        paper = PAPER.get((dataset, method, metric))
        if paper:
          preset = 'paper' if method == 'asic' else '–'
          out.append(f'| paper: {method} | {preset} | | ' +
                     ' | '.join(_cell(paper.get(c)) for c in categories) +
                     f' | {_cell(paper["mean"])} |')
      if dataset == 'spair' and metric == 'pck@0.10':
        out.append('| released code (README) | released | | ' + ' | '.join('–' * len(categories)) +
                   f' | {RELEASED_SPAIR_MEAN} |')
      if metric == 'pck@0.10' and dataset in PAPER_ABLATION:
        for variant, value in PAPER_ABLATION[dataset].items():
          out.append(f'| paper: asic | paper | {variant} | ' + ' | '.join('–' * len(categories)) +
                     f' | {value} |')
      out.append('')
  out.append('Means are unweighted over the categories present; a ± is the sample standard '
             'deviation over seeds (the mean column: of each seed\'s category mean). Paper rows: '
             'Tables 1-3 of Gupta et al. (ICCV 2023); PCK protocols per DESIGN §5.')
  return '\n'.join(out) + '\n'


def write_csv(records: list[dict], path: pathlib.Path) -> None:
  keys = sorted({k for r in records for k in r},
                key=lambda k: (k not in
                               ('dataset', 'category', 'method', 'preset', 'variant', 'seed'), k))
  with path.open('w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=keys)
    writer.writeheader()
    writer.writerows(records)


def main(argv: list[str] | None = None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--root', required=True, help='the folder holding the runs')
  parser.add_argument('--out',
                      default=None,
                      help='output path without suffix '
                      '(default ROOT/summary)')
  args = parser.parse_args(argv)
  records = collect(args.root)
  _warn_duplicates(records)
  if not records:
    print(f'error: no eval/results.json under {args.root}', file=sys.stderr)
    sys.exit(2)
  out = pathlib.Path(args.out) if args.out else pathlib.Path(args.root) / 'summary'
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix('.md').write_text(tables(records))
  write_csv(records, out.with_suffix('.csv'))
  print(f'{len(records)} evaluations -> {out}.md, {out}.csv')
  return records


if __name__ == '__main__':
  main()
