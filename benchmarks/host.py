"""The machine's CPU, read without jax (the released-code driver runs in a venv without it)."""

import pathlib
import platform


def cpu_name() -> str:
  """The CPU's model name from /proc/cpuinfo, else what `platform` says."""
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()
