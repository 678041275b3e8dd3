"""Shared helpers of the benchmark scripts: timing, memory and the machine's description."""

import datetime
import json
import os
import pathlib
import platform
import resource
import statistics
import sys
import time
from typing import Callable, Iterable

import jax

from benchmarks import host

ROOT = pathlib.Path(__file__).resolve().parent.parent


def machine() -> dict:
  """What the figures were measured on."""
  cpu = host.cpu_name()
  devices = jax.devices()
  return dict(cpu=cpu,
              cores=os.cpu_count(),
              platform=devices[0].platform,
              device=devices[0].device_kind,
              num_devices=len(devices),
              jax=jax.__version__,
              python=platform.python_version())


def peak_rss_gb() -> float:
  """Peak resident memory of this process so far (GB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def device_peak_gb() -> float | None:
  """Peak device memory in use (GB) where the backend reports it (GPU, TPU), else None."""
  stats = jax.devices()[0].memory_stats()
  if not stats or 'peak_bytes_in_use' not in stats:
    return None
  return stats['peak_bytes_in_use'] / 2**30


def compiled_memory_gb(compiled) -> float | None:
  """XLA's own account of a compiled program: arguments + outputs + temporaries (GB)."""
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  total = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes +
           analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)
  return total / 2**30


def time_calls(fn: Callable[[], object], repeats: int) -> list[float]:
  """Seconds of each of `repeats` calls of `fn` (blocking on its result)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return times


def median_ms(times: list[float]) -> float:
  return 1000 * statistics.median(times)


def write_json(path: str | pathlib.Path, records: list[dict]) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(
      json.dumps(dict(machine=machine(), date=datetime.date.today().isoformat(), records=records),
                 indent=2))


def report(records: Iterable[dict], columns: list[tuple[str, str]], out: str | None) -> list[dict]:
  """Runs the benchmarks `records` yields, each printed to stderr as it lands, then their
  Markdown table to stdout and, with `out`, the JSON file; returns the records."""
  done = []
  for record in records:
    done.append(record)
    print(record, file=sys.stderr, flush=True)
  print(markdown_table(done, columns))
  if out:
    write_json(out, done)
  return done


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
  """A Markdown table of `rows` with (key, header) `columns`; floats to 3 significant digits."""

  def cell(value):
    if value is None:
      return '–'
    if isinstance(value, float):
      return f'{value:.3g}'
    return str(value)

  lines = ['| ' + ' | '.join(h for _, h in columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(cell(row.get(k)) for k, _ in columns) + ' |' for row in rows]
  return '\n'.join(lines)
