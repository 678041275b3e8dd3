"""A training run's logs: `WORKDIR/metrics.jsonl` (one JSON object per logged step) and the
same scalars and every figure as TensorBoard events (tensorboardX)."""

import json
import os
import pathlib

import numpy as np
import tensorboardX

from asic_jax import safe_io


class MetricsWriter:
  """One run's logs: `WORKDIR/metrics.jsonl` (one JSON object per logged step) and the same
  scalars and every figure as TensorBoard events. On resume, records after the restored step
  (and a line a killed run left half-written) are dropped, and TensorBoard hides its events
  after it. Only process 0 writes (`primary`); on the others every method does nothing.
  """

  def __init__(self, workdir: pathlib.Path, start: int, *, primary: bool = True):
    self.path = workdir / 'metrics.jsonl'
    self._writer = None
    if primary:
      self.truncate(start)
      # purge_step: TensorBoard hides events after `start` left by an interrupted run. The
      # queue is unbounded: tensorboardX writes from a thread, which a failed write (a full
      # device) ends, and a bounded queue would then block the run's next log forever.
      with safe_io.writing(workdir / 'tensorboard'):
        self._writer = tensorboardX.SummaryWriter(str(workdir / 'tensorboard'),
                                                  purge_step=start + 1,
                                                  max_queue=1 << 30)

  def write(self, record: dict) -> None:
    """Appends `record` (with its 'step') to metrics.jsonl, its scalars under train/. A write
    that fails (a full device) takes back what it wrote of the line."""
    if self._writer is None:
      return
    self._check_tensorboard()
    line = (json.dumps(record) + '\n').encode()
    with safe_io.writing(self.path):
      fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
      end = os.fstat(fd).st_size
      try:
        while line:  # os.write may write part of it (a device filling up)
          line = line[os.write(fd, line):]
      except OSError:
        os.ftruncate(fd, end)
        raise
      finally:
        os.close(fd)
    for name, value in record.items():
      if name != 'step':
        self._writer.add_scalar(f'train/{name}', value, record['step'])

  def scalar(self, name: str, value: float, step: int) -> None:
    if self._writer is not None:
      self._check_tensorboard()
      self._writer.add_scalar(name, value, step)

  def figures(self, figures: dict[str, tuple[np.ndarray, str]], step: int) -> None:
    """Each figure (`{name: (uint8 [H, W, 3], caption)}`) as the image `figures/<name>`."""
    if self._writer is not None:
      self._check_tensorboard()
      for name, (image, _) in figures.items():
        self._writer.add_image(f'figures/{name}', image, step, dataformats='HWC')

  def _check_tensorboard(self) -> None:
    """Stops the run when tensorboardX's writing thread has ended (a write of its failed):
    `DiskFull` when its device is full, else an error saying so."""
    worker = self._writer.file_writer.event_writer._worker  # pylint: disable=protected-access
    if worker is None or worker.is_alive():
      return
    folder = self.path.parent / 'tensorboard'
    if (safe_io.free_space(folder) or 0) < 1 << 20:
      raise safe_io.disk_full(folder)
    raise RuntimeError(f'the TensorBoard writer of {folder} stopped (its error is above)')

  def truncate(self, step: int) -> None:
    """Drops records after `step`: a run resumed from an earlier checkpoint logs them again.
    A last line a killed run left half-written is dropped too; any other line that does not
    read (a damaged file) is dropped with a warning, the whole file kept aside as
    `metrics.jsonl.unreadable`. The file is replaced atomically."""
    if not self.path.exists():
      return
    data = self.path.read_bytes()
    lines = data.split(b'\n')[:-1]  # the part after the last newline was never finished
    steps = [_step_of(line) for line in lines]
    damaged = sum(s is None for s in steps)
    if damaged:
      safe_io.set_aside(self.path,
                        f'{damaged} of its {len(lines)} lines are not metrics records',
                        hint='the records that read are kept',
                        keep=True)
    kept = [line + b'\n' for line, s in zip(lines, steps) if s is not None and s <= step]
    safe_io.write_atomic(self.path, lambda f: f.write(b''.join(kept)))

  def close(self) -> None:
    """Flushes and closes the TensorBoard writer (a second call does nothing)."""
    if self._writer is not None:
      writer, self._writer = self._writer, None
      with safe_io.writing(self.path.parent / 'tensorboard'):
        writer.close()


def _step_of(line: bytes) -> int | None:
  """The step of a metrics line; None for one that is not a record."""
  try:
    step = json.loads(line.decode())['step']
  except (ValueError, KeyError, TypeError):  # UnicodeDecodeError is a ValueError
    return None
  return step if isinstance(step, int) else None
