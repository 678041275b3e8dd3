"""Runs every benchmark and writes BENCHMARKS.md: one command regenerates all its figures.

  python -m benchmarks.run_all                 # CPU: ~30 minutes on 2 cores
  python -m benchmarks.run_all --gpu           # on a GPU: full shapes, float32 and bfloat16

Each benchmark runs in its own process (so peak memory is its own) and leaves its records
in `benchmarks/results/*.json`; BENCHMARKS.md is written from those.
"""

import argparse
import datetime
import json
import pathlib
import subprocess
import sys

from benchmarks import common, evaluation, extraction, train_step

RESULTS = common.ROOT / 'benchmarks' / 'results'


def plan(gpu: bool) -> list[tuple[str, str, list[str]]]:
  """(name, module, arguments) of every benchmark."""
  if gpu:
    return [
        ('train_step', 'benchmarks.train_step',
         ['--shapes=tiny,released,full', '--dtypes=float32,bfloat16', '--steps=50']),
        ('train_scaling', 'benchmarks.train_step', [
            '--shapes=batch=4,batch=8,batch=20,batch=40,img=64,img=128,img=256,images=10,'
            'images=30,images=100,images=300', '--steps=30'
        ]),
        ('extraction', 'benchmarks.extraction', ['--strides=2', '--images=30', '--batch=4']),
        ('evaluation', 'benchmarks.evaluation', ['--sizes=10,30,100,300', '--img=256']),
    ]
  return [
      ('train_step', 'benchmarks.train_step', ['--shapes=tiny,released,full', '--steps=3']),
      ('train_scaling', 'benchmarks.train_step', [
          '--shapes=batch=4,batch=8,batch=16,img=64,img=128,img=256,images=10,images=30,'
          'images=100,images=300', '--steps=3'
      ]),
      ('extraction', 'benchmarks.extraction', ['--strides=8,4', '--images=10']),
      ('extraction_n', 'benchmarks.extraction', ['--strides=8', '--images=30', '--size=128']),
      ('evaluation', 'benchmarks.evaluation', ['--sizes=10,30,100', '--img=64']),
  ]


def run(name: str, module: str, args: list[str]) -> dict:
  out = RESULTS / f'{name}.json'
  subprocess.run([sys.executable, '-m', module, f'--out={out}', *args], cwd=common.ROOT, check=True)
  return json.loads(out.read_text())


SECTIONS = {
    'train_step': ('Train step', train_step.COLUMNS,
                   'The whole step: both U-Net passes, TPS and jitter, every loss term (LPIPS on '
                   'untrained VGG-16 weights: same cost), the Adam update. Median of the timed '
                   'steps after one warm-up; compile time separately. `released`: the shape at '
                   'which the released PyTorch code takes ~1.06 s/step on a 2-core CPU '
                   '(DESIGN §7); `÷ released` is our time over that.'),
    'train_scaling':
        ('How the step grows with batch, image size and collection size', train_step.COLUMNS,
         '`batch=B` and `img=S` change one thing of the `released` shape; '
         '`images=N` is a 64-px collection of N images (batch 8), with the k-NN '
         'pair graph (k = 10) from N = 100 on: the step does not grow with N; the '
         'pairs (and the memory of their matches) grow as N·k, not N².'),
    'extraction': ('Extraction', extraction.COLUMNS,
                   'DINO ViT-S/8 shapes (random weights, loaded through the same path as '
                   '`facebook/dino-vits8`): blocks 9 and 11 and the saliency in one pass per '
                   'image; mutual NN of all N(N-1)/2 pairs; co-segmentation and 8 parts.'),
    'extraction_n': ('Extraction, more images', extraction.COLUMNS, ''),
    'evaluation': ('Evaluation', evaluation.COLUMNS,
                   'Flows of the whole collection (collection BatchNorm statistics), transfer '
                   'of every ordered pair and PCK, and 200 tuples for each of 2-, 3- and '
                   '4-CyPCK.'),
}


def write(records: dict[str, dict], command: str) -> pathlib.Path:
  machine = next(iter(records.values()))['machine']
  lines = [
      '# Benchmarks', '',
      f'Regenerate every figure here with `{command}` (each benchmark can also run '
      'alone: `python -m benchmarks.train_step --help`).', '',
      f'Machine: {machine["cpu"]}, {machine["cores"]} cores; JAX {machine["jax"]} on '
      f'{machine["num_devices"]} x {machine["platform"]} ({machine["device"]}); Python '
      f'{machine["python"]}. Written {datetime.date.today().isoformat()}.', ''
  ]
  for name, result in records.items():
    title, columns, note = SECTIONS[name]
    lines += [f'## {title}', '', note, ''] if note else [f'## {title}', '']
    lines += [common.markdown_table(result['records'], columns), '']
  path = common.ROOT / 'BENCHMARKS.md'
  path.write_text('\n'.join(lines))
  return path


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--gpu', action='store_true', help='full shapes, float32 and bfloat16')
  parser.add_argument('--only', default='', help='comma list of benchmark names to re-run')
  args = parser.parse_args(argv)
  RESULTS.mkdir(parents=True, exist_ok=True)
  records = {}
  for name, module, extra in plan(args.gpu):
    if not args.only or name in args.only.split(','):
      records[name] = run(name, module, extra)
    elif (RESULTS / f'{name}.json').exists():
      records[name] = json.loads((RESULTS / f'{name}.json').read_text())
  command = 'python -m benchmarks.run_all' + (' --gpu' if args.gpu else '')
  print(f'wrote {write(records, command)}')


if __name__ == '__main__':
  main()
