"""Runs every benchmark and writes BENCHMARKS.md: one command regenerates all its figures.

  python -m benchmarks.run_all                 # CPU: ~30 minutes on 2 cores
  python -m benchmarks.run_all --gpu           # on a GPU: full shapes, float32 and bfloat16

Each benchmark runs in its own process (so peak memory is its own) and leaves its records
in `benchmarks/results/*.json`; BENCHMARKS.md is written from those. With
`ASIC_RELEASED_CODE` (a checkout of kampta/asic) and `ASIC_RELEASED_PYTHON` (the python of a
virtualenv holding torch, torchvision and kornia; see `benchmarks/released_step.py`), the CPU
run also times the released code's own step and ours at the `cpu` and `released` shapes, in
turn for `ROUNDS` rounds, and puts both implementations side by side.
"""

import argparse
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys

from benchmarks import common, evaluation, extraction, train_step

RESULTS = common.ROOT / 'benchmarks' / 'results'
# Rounds of the side-by-side comparison: the machine's speed drifts by 10-20 % within minutes,
# so the released code and ours are timed in turn, round after round, and compared by medians.
ROUNDS = 3


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
        ('extraction_vgg', 'benchmarks.extraction',
         ['--backbone=vgg16', '--strides=4', '--images=30', '--batch=4']),
        ('evaluation', 'benchmarks.evaluation', ['--sizes=10,30,100,300', '--img=256']),
    ]
  released = [
      ('side_by_side', None, ['--shapes=cpu,released', f'--rounds={ROUNDS}'])
  ] if os.environ.get('ASIC_RELEASED_CODE') and os.environ.get('ASIC_RELEASED_PYTHON') else []
  return released + [
      ('train_step', 'benchmarks.train_step', ['--shapes=cpu,released', '--steps=15']),
      ('train_step_full', 'benchmarks.train_step', ['--shapes=tiny,full', '--steps=3']),
      ('train_scaling', 'benchmarks.train_step', [
          '--shapes=batch=4,batch=8,batch=16,img=64,img=128,img=256,images=10,images=30,'
          'images=100,images=300', '--steps=3'
      ]),
      ('extraction', 'benchmarks.extraction', ['--strides=8,4', '--images=10']),
      ('extraction_n', 'benchmarks.extraction', ['--strides=8', '--images=30', '--size=128']),
      ('extraction_vgg', 'benchmarks.extraction',
       ['--backbone=vgg16', '--strides=4', '--images=10', '--size=128']),
      ('evaluation', 'benchmarks.evaluation', ['--sizes=10,30,100', '--img=64']),
  ]


def side_by_side(folder: pathlib.Path, shapes: list[str], rounds: int) -> dict:
  """The released code's step and ours at each shape, timed in turn (released, then ours)
  `rounds` times, each in its own process; `folder/side_by_side.json` holds every round's
  ms/step of both."""
  out = folder / 'side_by_side.json'
  scratch = folder / 'side_by_side.round.json'  # each round's result, read back at once
  earlier = _earlier_runs(out)
  runs = (('released', os.environ['ASIC_RELEASED_PYTHON'], 'benchmarks.released_step', []),
          ('ours', sys.executable, 'benchmarks.train_step', ['--steps=10']))
  last = {}  # (shape, who) -> that shape's last result file of each implementation
  times = {(shape, who): [] for shape in shapes for who, *_ in runs}
  for _ in range(rounds):
    for shape in shapes:
      for who, python, module, extra in runs:
        subprocess.run([python, '-m', module, f'--out={scratch}', f'--shapes={shape}', *extra],
                       cwd=common.ROOT,
                       check=True)
        last[shape, who] = json.loads(scratch.read_text())
        times[shape, who].append(last[shape, who]['records'][0]['ms_per_step'])
  records = []
  for shape in shapes:
    theirs = last[shape, 'released']
    about = theirs['records'][0]
    records.append(
        dict({k: about[k] for k in ('shape', 'batch', 'img', 'recon', 'widths', 'threads')},
             implementation=about['implementation'],
             kornia=theirs['machine'].get('kornia', '?'),
             ours_ms=times[shape, 'ours'],
             released_ms=times[shape, 'released']))
  mine = last[shapes[-1], 'ours']
  result = dict(machine=mine['machine'],
                date=mine['date'],
                rounds=rounds,
                records=records,
                earlier=earlier)
  out.write_text(json.dumps(result, indent=2))
  scratch.unlink()
  return result


def _earlier_runs(path: pathlib.Path) -> list[dict]:
  """The side-by-side runs stored in `path`, oldest first (each `{date, records}`), so that the
  machine's drift from run to run stays on record; none when there is no such file."""
  if not path.exists():
    return []
  previous = json.loads(path.read_text())
  return previous.get('earlier', []) + [dict(date=previous['date'], records=previous['records'])]


def _ratio(record: dict) -> float:
  """asic_jax's median ms/step over the released code's, of one shape of one run."""
  return statistics.median(record['ours_ms']) / statistics.median(record['released_ms'])


def run(folder: pathlib.Path, name: str, module: str | None, args: list[str]) -> dict:
  """Runs a benchmark, one process per shape or size (so peak memory is that shape's own),
  into `folder/<name>.json` (`side_by_side`: both implementations in turn)."""
  if name == 'side_by_side':
    options = dict(a.lstrip('-').split('=', 1) for a in args)
    return side_by_side(folder, options['shapes'].split(','), int(options['rounds']))
  out = folder / f'{name}.json'
  option = next((a for a in args if a.startswith(('--shapes=', '--sizes=', '--strides='))), None)
  values = option.split('=', 1)[1].split(',') if option else [None]
  records = []
  for value in values:
    single = [a for a in args if a != option
             ] + ([f'{option.split("=", 1)[0]}={value}'] if value else [])
    subprocess.run([sys.executable, '-m', module, f'--out={out}', *single],
                   cwd=common.ROOT,
                   check=True)
    result = json.loads(out.read_text())
    records += result['records']
  result['records'] = records
  out.write_text(json.dumps(result, indent=2))
  return result


SECTIONS = {
    'train_step': ('Train step', train_step.COLUMNS,
                   'The whole step: both U-Net passes, TPS and jitter, every loss term (the '
                   'LPIPS VGG-16: its cost does not depend on its weights), the Adam update. '
                   'Median of 15 timed steps after one warm-up; compile time separately. `cpu`: '
                   'the `cpu` config word\'s shape; `released`: the shape the released code\'s '
                   'CPU figures were first taken at (DESIGN §7).'),
    'train_step_full': ('Train step, the smallest and the paper\'s shapes', train_step.COLUMNS,
                        '3 timed steps each.'),
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
    'extraction_vgg': ('Extraction with VGG-16', extraction.COLUMNS,
                       'The bundled ImageNet VGG-16 (real weights): relu4_3 (matches) and '
                       'relu5_3 (parts) on a stride-4 grid in one pass per image; no '
                       'co-segmentation (no saliency: masks none).'),
    'evaluation': ('Evaluation', evaluation.COLUMNS,
                   'Flows of the whole collection (collection BatchNorm statistics), transfer '
                   'of every ordered pair and PCK, and 200 tuples for each of 2-, 3- and '
                   '4-CyPCK.'),
}

# How the CPU step was made 3x faster (issue 17): what `benchmarks/profile_step.py` found at
# the `cpu` shape, before (commit 18c5f19) and after `asic_jax/models/layers.py`.
WHERE_THE_STEP_WENT = """## Where the CPU step went

`python -m benchmarks.profile_step --shape=cpu` traces the compiled step with `jax.profiler` and
attributes every XLA operation to the source line that made it. Before `asic_jax/models/layers.py`
the `cpu` shape took 2.19 s/step, of which about 1.55 s were two XLA:CPU pathologies:

| where | what XLA ran | ms/step before | now |
|---|---|---|---|
| LPIPS's conv5 block (the VGG-16 at 32 px reaches 2 x 2 maps) | 3 x 3 convolutions of 2 x 2 maps, 512 -> 512 channels, forward and both gradients: about 100 ms each for 0.3 GFLOP (a 1 ms matrix product) | ~950 | an im2col matrix product (`layers.conv3x3`, maps of <= 64 pixels) |
| the U-Net's 2 x 2 stride-2 transposed convolutions (4 per pass, 2 passes) | the kernel gradient as a base-dilated convolution with a 64 x 64 window, ~75 ms each | ~600 | an einsum and a depth-to-space reshape (`layers.UpConv2x2`), whose gradients are matrix products |

Both compute the same functions with Flax's parameter names, shapes and initialisers (a
checkpoint, a converted PyTorch weight and an initial value are unchanged; outputs agree to
float32 rounding, `tests/unet_test.py`, `tests/perceptual_test.py`). Max-pooling became the max of
four strided slices (an elementwise gradient instead of select-and-scatter).

What was left was mostly convolutions, and most of their gap was one default: jaxlib 0.10's
XLA:CPU hands convolutions (and matrix products and reductions) to YNNPACK, which runs a
convolution on one thread. One 3 x 3 convolution with both gradients at the U-Net's sizes used
1.05-1.36 CPU-seconds per second under YNNPACK at 128², 64² and 32² (1.83 at 16²), 1.7-1.9 as
XLA's own convolution, which was
faster at almost every size (`python -m benchmarks.conv_forms --forms=xla,ynnpack`, 2026-12-03:
16 x 128², 32 -> 16 channels, 82 against 111 ms; 16 x 32², 128 -> 64, 24 against 47 ms) and now
level with PyTorch's oneDNN (`$ASIC_RELEASED_PYTHON -m benchmarks.conv_forms --forms=torch`: 66
and 23 ms; 0.8-1.2x across the eight sizes). So every program `asic_jax.parallel` compiles on a
CPU (the train step; the flows of `asic_jax/flows.py`) passes `parallel.CPU_COMPILER_OPTIONS`,
`xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE`: reductions stay with YNNPACK,
convolutions and matrix products go to XLA's own (an `XLA_FLAGS` that sets that option wins).
Compiled both ways in one process and timed in turn, 10 steps each: the `cpu` step 781 -> 697 ms,
the `released` step 1355 -> 1217 ms; the step's CPU-seconds per second rose from 1.63 to 1.87
(the released code's: 1.99). Taking the reductions from YNNPACK as well lost the gain (776 ms).

What is left: at the `cpu` shape the step now spends about the CPU time the released code's does
(1.18-1.34 against 1.17-1.39 CPU-seconds a step, measured in turn), but its elementwise kernels
(BatchNorm, ReLU, their gradients, the transposes of `UpConv2x2`'s gradient: about 260 ms of
kernels a step in the trace) each run on one thread where PyTorch's use both cores. Neither
XLA:CPU's switches (`--xla_cpu_use_onednn`, `--xla_cpu_use_xnnpack`,
`--xla_cpu_experimental_{onednn,xnn}_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION`,
`--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY`,
`--xla_cpu_prefer_vector_width=512`, `--xla_cpu_use_fusion_emitters=false`,
`--xla_cpu_enable_concurrency_optimized_scheduler=true`) nor two fake CPU devices splitting the
batch (718 against 646 ms) moved the step beyond the run-to-run spread; neither matrix-product
form of a convolution helps at these sizes (`conv_forms`: im2col 1.5-4x slower, a product to 9x
the output channels then nine shifted sums 7-30x); splitting the up blocks' first convolution
(2C -> C channels, on a concatenation) into two saved about 3 % of the step (not done).

Tried next (2026-12-03, a later session; each compiled side by side in one process and timed
step by step in turn, 30-40 steps each, medians): `xla_cpu_experimental_enable_tiling_propagation`
(`released` 1074 against 1052 ms), `xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_RUNTIME` (1052 against
1052), YNNPACK's elementwise fusions as well (`LIBRARY_FUSION_TYPE_ELTWISE`: 1324 against 1155),
BatchNorm's one-pass variance (Flax's `use_fast_variance`: `cpu` 609 against 639 ms and 719
against 749 in two runs, `released` 1030 against 1040; not taken: it changes the statistics'
rounding for 1-5 %), BatchNorm + ReLU with a hand-written gradient (`jax.custom_vjp`, one pass
for the two channel sums and one for the input's gradient: `cpu` 627 against 642, within the
spread) and the split first convolution again (`cpu` 641 against 639, `released` 969 against
978). The largest single item left in the trace is layout: XLA:CPU's kernel
gradient of a convolution wants the batch innermost, so every activation a convolution saw is
transposed to `[C, H, W, B]` (`transpose_copy_fusion`, about 75 ms a step at `cpu`, a tenth of
it, each on one thread), which oneDNN's kernel gradient does not need.
"""


def _side_by_side(records: dict[str, dict]) -> list[str]:
  """The step of both implementations at the shapes the released code was timed at."""
  if 'side_by_side' not in records:
    return []
  result = records['side_by_side']
  first = result['records'][0]
  lines = [
      '## Side by side with the released code', '',
      'The same 2-core CPU with nothing else running; the released code\'s own modules '
      f'({first["implementation"]}, kornia {first["kornia"]}, {first["threads"]} threads) driven '
      'by `benchmarks/released_step.py` (median of 10 steps after 2 warm-ups) and ours '
      '(`benchmarks/train_step.py`, median of 10 steps after one warm-up), each in its own '
      f'process, in turn: released, ours, shape after shape, {result["rounds"]} rounds. The '
      'machine\'s speed drifts by 10-20 % within minutes, so each column is the median over '
      'the rounds and the last column gives the ratio of each round\'s pair too. Below 1, '
      f'asic_jax is faster. Measured {result["date"]}.', '',
      '| shape | batch | px | recon | U-Net widths | asic_jax ms/step | released ms/step | '
      'asic_jax ÷ released | each round |', '|---|---|---|---|---|---|---|---|---|'
  ]
  for r in result['records']:
    ours, theirs = statistics.median(r['ours_ms']), statistics.median(r['released_ms'])
    rounds = ', '.join(f'{a / b:.2f}' for a, b in zip(r['ours_ms'], r['released_ms']))
    lines.append(f'| {r["shape"]} | {r["batch"]} | {r["img"]} | {r["recon"]} | {r["widths"]} | '
                 f'{ours:.0f} | {theirs:.0f} | {_ratio(r):.2f} | {rounds} |')
  runs = result.get('earlier', []) + [result]
  if len(runs) > 1:
    ratios = {r['shape']: [] for r in result['records']}
    for run in runs:
      for r in run['records']:
        ratios.setdefault(r['shape'], []).append(_ratio(r))
    each = '; '.join(f'`{shape}` ' + ', '.join(f'{x:.2f}' for x in values) +
                     f' ({min(values):.2f}-{max(values):.2f})' for shape, values in ratios.items())
    lines += [
        '',
        f'The ratio moves with the machine. All {len(runs)} runs of this benchmark on record '
        f'({", ".join(run["date"] for run in runs)}; `side_by_side.json` keeps the earlier ones '
        f'under `earlier`), asic_jax ÷ released, oldest first: {each}.'
    ]
  return lines + ['']


def _section(platform: str, records: dict[str, dict]) -> list[str]:
  machine = next(iter(records.values()))['machine']
  command = 'python -m benchmarks.run_all' + (' --gpu' if platform == 'gpu' else '')
  title = (f'{machine["cpu"]}, {machine["cores"]} cores'
           if platform == 'cpu' else f'{machine["num_devices"]} x {machine["device"]}')
  lines = [
      f'# {platform.upper()}: {title}', '',
      f'`{command}`. Machine: {machine["cpu"]}, {machine["cores"]} cores; JAX '
      f'{machine["jax"]} on {machine["num_devices"]} x {machine["platform"]} '
      f'({machine["device"]}); Python {machine["python"]}.', ''
  ]
  lines += _side_by_side(records)
  if platform == 'cpu':
    lines += WHERE_THE_STEP_WENT.splitlines() + ['']
  for name, result in records.items():
    if name == 'side_by_side':
      continue
    title, columns, note = SECTIONS[name]
    lines += [f'## {title}', '', note, ''] if note else [f'## {title}', '']
    lines += [
        f'Measured {result["date"]}.' if 'date' in result else
        'Measured on 2026-12-01, before the convolutions of `models/layers.py` (2026-12-02): '
        f'`python -m benchmarks.run_all --only={name}` for current figures.', ''
    ]
    lines += [common.markdown_table(result['records'], columns), '']
  return lines


def write() -> pathlib.Path:
  """BENCHMARKS.md from every platform's records in `benchmarks/results/<platform>/`."""
  lines = [
      '# Benchmarks', '',
      'Every figure here regenerates with the command its section names (each benchmark '
      'also runs alone: `python -m benchmarks.train_step --help`). Each shape runs in its '
      "own process, so 'process peak RSS' is that shape's own. Written "
      f'{datetime.date.today().isoformat()}.', ''
  ]
  found = False
  for platform in ('cpu', 'gpu'):
    names = [n for n in ('side_by_side', *SECTIONS) if (RESULTS / platform / f'{n}.json').exists()]
    if names:
      found = True
      lines += _section(
          platform, {n: json.loads((RESULTS / platform / f'{n}.json').read_text()) for n in names})
  if not any((RESULTS / 'gpu').glob('*.json')):
    lines += [
        '# GPU', '', 'Not measured yet: no GPU was lent to the sessions that wrote this '
        'file. On one, `python -m benchmarks.run_all --gpu` adds this section (full '
        'shapes, float32 and bfloat16, 20 to 300 images).', ''
    ]
  if not found:
    raise SystemExit('no benchmark results yet')
  path = common.ROOT / 'BENCHMARKS.md'
  path.write_text('\n'.join(lines))
  return path


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--gpu', action='store_true', help='full shapes, float32 and bfloat16')
  parser.add_argument('--only',
                      default='',
                      help='comma list of benchmark names to re-run (`none`: only rewrite '
                      'BENCHMARKS.md)')
  args = parser.parse_args(argv)
  folder = RESULTS / ('gpu' if args.gpu else 'cpu')
  folder.mkdir(parents=True, exist_ok=True)
  planned = plan(args.gpu)
  unknown = set(filter(None, args.only.split(','))) - {name for name, _, _ in planned} - {'none'}
  if unknown:
    raise SystemExit(f'--only: {", ".join(sorted(unknown))} not in this plan '
                     '(side_by_side needs ASIC_RELEASED_CODE and ASIC_RELEASED_PYTHON; '
                     '`none` rewrites BENCHMARKS.md from the stored results)')
  for name, module, extra in planned:
    if not args.only or name in args.only.split(','):
      run(folder, name, module, extra)
  print(f'wrote {write()}')


if __name__ == '__main__':
  main()
