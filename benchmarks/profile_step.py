"""Where a train step's time goes: a `jax.profiler` trace of the compiled step, each XLA
operation's time attributed to the source line that made it (its HLO `op_name`).

  python -m benchmarks.profile_step --shape=cpu            # or released, tiny, full
  python -m benchmarks.profile_step --shape=released --top=40

Prints milliseconds per step by part (U-Net forward / backward, LPIPS forward / backward,
optimizer, the rest) and the slowest source operations. How BENCHMARKS.md's "Where the CPU
step went" was found: XLA:CPU's convolutions on tiny maps and the transposed convolution's
kernel gradient (`asic_jax/models/layers.py`).
"""

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile

import jax

from benchmarks import train_step


def attribute(trace_dir: str, hlo_text: str, steps: int) -> collections.Counter:
  """`{op_name: ms per step}` from a trace folder and the compiled module's HLO text."""
  names = {}
  for line in hlo_text.splitlines():
    found = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]*)"', line)
    if found:
      names.setdefault(found.group(1), found.group(2))
  path = sorted(glob.glob(f'{trace_dir}/plugins/profile/*/*.trace.json.gz'))[-1]
  with gzip.open(path) as f:
    events = json.load(f)['traceEvents']
  out = collections.Counter()
  for event in events:
    if event.get('ph') == 'X' and event['name'] in names:
      out[names[event['name']]] += event['dur'] / 1000 / steps
  return out


def part(op_name: str) -> str:
  """The part of the step an operation belongs to."""
  direction = 'backward' if 'transpose(' in op_name else 'forward'
  if '_LPIPS' in op_name or '_VGGSSL' in op_name:
    return f'perceptual {direction}'
  if '/align/' in op_name:
    return f'U-Net {direction}'
  if 'adam' in op_name.lower() or '_where' in op_name:
    return 'optimizer and the non-finite guard'
  return f'everything else {direction}'


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--shape', default='cpu')
  parser.add_argument('--dtype', default='float32')
  parser.add_argument('--steps', type=int, default=3, help='traced steps')
  parser.add_argument('--top', type=int, default=25)
  args = parser.parse_args(argv)
  _, _, compiled, _, call = train_step.compiled_step(args.shape, args.dtype)
  for _ in range(2):
    jax.block_until_ready(call())
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder):
      for _ in range(args.steps):
        jax.block_until_ready(call())
    times = attribute(folder, compiled.as_text(), args.steps)
  parts = collections.Counter()
  for name, ms in times.items():
    parts[part(name)] += ms
  print(f'shape {args.shape}: {sum(times.values()):.0f} ms of XLA operations per step '
        '(two cores: operations may overlap)\n')
  print('| part | ms/step |\n|---|---|')
  for name, ms in parts.most_common():
    print(f'| {name} | {ms:.1f} |')
  print('\n| source operation (op_name) | ms/step |\n|---|---|')
  for name, ms in times.most_common(args.top):
    print(f'| `{name.removeprefix("jit(step)/")}` | {ms:.1f} |')


if __name__ == '__main__':
  main()
