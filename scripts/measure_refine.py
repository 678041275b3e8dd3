"""Measures `eval.transfer='refine'` (sigma x temperature) against 'nearest' on trained runs.

  python scripts/measure_refine.py runs/a runs/b ... [--sigmas=0.05,0.08] [--temperatures=0,0.05]

Each workdir is restored at its newest checkpoint (as `mode=eval`); every transfer is scored
under the run's own protocol (PCK@0.10, PCK@0.05, 4-CyPCK@0.10). Prints one Markdown row per
run and setting, then the mean over the runs. The README's refine settings come from this
script on PF-WILLOW (see "Accuracy on real photos").
"""

import argparse
import sys

import numpy as np

from asic_jax import restore
from asic_jax import flows as flows_lib
from asic_jax.correspondences import extract
from asic_jax.evaluation import protocol


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+')
  parser.add_argument('--sigmas', default='0.03,0.05,0.08,0.12', help='fractions of S')
  parser.add_argument('--temperatures', default='0,0.02,0.05,0.1')
  args = parser.parse_args(argv)
  settings = [('nearest', 1.0, 0.0)] + [('refine', float(w), float(t))
                                        for w in args.sigmas.split(',')
                                        for t in args.temperatures.split(',')]
  table = {s: [] for s in settings}
  print('| run | transfer | sigma (S) | temperature | PCK@0.10 | PCK@0.05 | 4-CyPCK@0.10 |')
  print('|---|---|---|---|---|---|---|')
  for workdir in args.workdirs:
    config, collection, state, _ = restore.restore_run(None, workdir)
    flows = flows_lib.collection_flows(config, state, collection.images, flipped=collection.flipped)
    descriptors = extract.match_descriptors(collection, config)
    for method, sigma, temperature in settings:
      fn = protocol.flow_transfer(flows,
                                  collection.masks,
                                  config.eval.chunk,
                                  method=method,
                                  descriptors=descriptors,
                                  refine_sigma=sigma * collection.size,
                                  refine_temperature=temperature)
      r = protocol.score(collection, fn, config)
      row = (100 * r['pck']['0.10'], 100 * r['pck']['0.05'], 100 * r['k_cycle']['4']['pck']['0.10'])
      table[(method, sigma, temperature)].append(row)
      print(f'| {workdir} | {method} | {sigma} | {temperature} | ' +
            ' | '.join(f'{v:.1f}' for v in row) + ' |',
            flush=True)
  print('\nMean over the runs:\n')
  print('| transfer | sigma (S) | temperature | PCK@0.10 | PCK@0.05 | 4-CyPCK@0.10 |')
  print('|---|---|---|---|---|---|')
  for (method, sigma, temperature), rows in table.items():
    mean = np.mean(rows, axis=0)
    print(f'| {method} | {sigma} | {temperature} | ' + ' | '.join(f'{v:.1f}' for v in mean) + ' |')


if __name__ == '__main__':
  sys.exit(main())
