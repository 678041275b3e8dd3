"""Measures `eval.transfer='refine'` (sigma x temperature) and test-time congealing
(`eval.congeal_*`, the nearest transfer through the congealed maps) against 'nearest' on
trained runs.

  python scripts/measure_refine.py runs/a runs/b ... [--sigmas=0.05,0.08] [--temperatures=0,0.05]
      [--congeal=5:0.15:0.1,3:0.1:0.05]   # steps:sigma:temperature, each a row; '' for none

Each workdir is restored at its newest checkpoint (as `mode=eval`); every transfer is scored
under the run's own protocol (PCK@0.10, PCK@0.05, 4-CyPCK@0.10). Prints one Markdown row per
run and setting, then the mean over the runs. The README's refine and congealing settings
come from this script on PF-WILLOW (see "Accuracy on real photos").
"""

import argparse
import sys

import numpy as np

from asic_jax import congeal, restore
from asic_jax import flows as flows_lib
from asic_jax.correspondences import extract
from asic_jax.evaluation import protocol


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+')
  parser.add_argument('--sigmas', default='0.03,0.05,0.08,0.12', help='fractions of S')
  parser.add_argument('--temperatures', default='0,0.02,0.05,0.1')
  parser.add_argument('--congeal',
                      default='5:0.15:0.1',
                      help='steps:sigma:temperature (sigma a fraction of the canonical side), '
                      'comma-separated; each is a row of the nearest transfer through the maps '
                      'congealed so (eval.congeal_grid from the run)')
  args = parser.parse_args(argv)
  settings = [('nearest', 1.0, 0.0)] + [('refine', float(w), float(t))
                                        for w in args.sigmas.split(',')
                                        for t in args.temperatures.split(',')]
  settings += [('congeal', float(s), float(t), int(n))
               for n, s, t in (c.split(':') for c in args.congeal.split(',') if c)]
  table = {s: [] for s in settings}
  print('| run | transfer | sigma | temperature | PCK@0.10 | PCK@0.05 | 4-CyPCK@0.10 |')
  print('|---|---|---|---|---|---|---|')
  for workdir in args.workdirs:
    config, collection, state, _ = restore.restore_run(None, workdir)
    flows = flows_lib.collection_flows(config, state, collection.images, flipped=collection.flipped)
    descriptors = extract.match_descriptors(collection, config)
    for setting in settings:
      method, sigma, temperature = setting[:3]
      through = flows
      if method == 'congeal':
        steps = setting[3]
        through, _ = congeal.congeal(
            flows, descriptors[0], descriptors[1], collection.masks_or_ones(),
            congeal.Settings(steps, sigma, temperature, int(config.eval.congeal_grid)))
      fn = protocol.flow_transfer(through,
                                  collection.masks,
                                  config.eval.chunk,
                                  method='refine' if method == 'refine' else 'nearest',
                                  descriptors=descriptors,
                                  refine_sigma=sigma * collection.size,
                                  refine_temperature=temperature)
      r = protocol.score(collection, fn, config)
      row = (100 * r['pck']['0.10'], 100 * r['pck']['0.05'], 100 * r['k_cycle']['4']['pck']['0.10'])
      table[setting].append(row)
      print(f'| {workdir} | {_name(setting)} | {sigma} | {temperature} | ' +
            ' | '.join(f'{v:.1f}' for v in row) + ' |',
            flush=True)
  print('\nMean over the runs:\n')
  print('| transfer | sigma | temperature | PCK@0.10 | PCK@0.05 | 4-CyPCK@0.10 |')
  print('|---|---|---|---|---|---|')
  for setting, rows in table.items():
    mean = np.mean(rows, axis=0)
    print(f'| {_name(setting)} | {setting[1]} | {setting[2]} | ' +
          ' | '.join(f'{v:.1f}' for v in mean) + ' |')


def _name(setting) -> str:
  """'nearest', 'refine' (sigma a fraction of S), or 'congeal N + nearest' (sigma a fraction
  of the canonical side)."""
  return f'congeal {setting[3]} + nearest' if setting[0] == 'congeal' else setting[0]


if __name__ == '__main__':
  sys.exit(main())
