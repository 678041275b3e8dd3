"""The run's logs: metrics.jsonl resumed without later, half-written or damaged lines; a full
device or a dead TensorBoard writer is one error, never half a line or a hang."""

import errno
import io
import json
import logging
import os
import struct

import numpy as np
from PIL import Image
import pytest
from tensorboardX.proto import event_pb2

from asic_jax import logs
from asic_jax.errors import DiskFull


def test_metrics_log_resume_drops_later_and_half_written_lines(tmp_path, caplog):
  log = logs.MetricsWriter(tmp_path, 0)
  for step in (5, 10, 15):
    log.write({'step': step, 'total': 1.0})
  log.close()
  with log.path.open('a') as f:
    f.write('{"step": 20, "tot')  # a kill in mid-write
  resumed = logs.MetricsWriter(tmp_path, 10)  # what a run resumed at step 10 opens
  resumed.close()
  assert [json.loads(line)['step'] for line in log.path.read_text().splitlines()] == [5, 10]
  # No temporary left beside them, and nothing to warn about: a kill leaves a half line.
  assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.jsonl', 'tensorboard']
  assert not caplog.records
  # A damaged log (bytes that are not text, a line that is not a record): the records that
  # read are kept, the whole file kept aside with a warning.
  damaged = log.path.read_bytes() + b'\xff\xfe\x00\x12garbage\n[1, 2]\n'
  log.path.write_bytes(damaged)
  with caplog.at_level(logging.WARNING, logger='asic_jax'):
    logs.MetricsWriter(tmp_path, 10).close()
  assert [json.loads(line)['step'] for line in log.path.read_text().splitlines()] == [5, 10]
  assert (tmp_path / 'metrics.jsonl.unreadable').read_bytes() == damaged
  assert '2 of its 4 lines are not metrics records' in caplog.text


def test_a_full_device_is_one_error_and_leaves_no_half_line(tmp_path, monkeypatch):
  log = logs.MetricsWriter(tmp_path, 0)
  log.write({'step': 1, 'total': 1.0})
  written = log.path.read_bytes()
  real_write = os.write

  def half_then_full(fd, data):
    real_write(fd, data[:len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  with monkeypatch.context() as patch:
    patch.setattr(logs.os, 'write', half_then_full)
    with pytest.raises(DiskFull, match=f'no space left on device writing {log.path} '):
      log.write({'step': 2, 'total': 1.0})
  assert log.path.read_bytes() == written
  log.close()


def test_a_dead_tensorboard_writer_stops_the_run_instead_of_hanging_it(tmp_path):
  """tensorboardX writes from a thread; a write that fails ends it. The next log says so
  (with room on the device: not a full one) rather than waiting on the thread forever."""
  log = logs.MetricsWriter(tmp_path, 0)
  log._writer.file_writer.event_writer._worker.stop()  # pylint: disable=protected-access
  with pytest.raises(RuntimeError,
                     match=f'the TensorBoard writer of {tmp_path}/tensorboard stopped'):
    log.write({'step': 1, 'total': 1.0})


def _events(folder):
  """Every event of the TensorBoard files in `folder` (TFRecords: length, its CRC, the
  serialised `Event`, its CRC)."""
  found = []
  for path in sorted(folder.glob('events.out.tfevents.*')):
    data = path.read_bytes()
    while data:
      length = struct.unpack('<Q', data[:8])[0]
      found.append(event_pb2.Event.FromString(data[12:12 + length]))
      data = data[12 + length + 4:]
  return found


def test_scalars_and_figures_reach_tensorboard(tmp_path):
  """Each logged scalar under train/, each figure as the PNG image figures/<name> of its
  size, at its step."""
  log = logs.MetricsWriter(tmp_path, 0)
  log.write({'step': 3, 'total': 2.5, 'kp': 0.5})
  figure = np.zeros((5, 7, 3), np.uint8)
  figure[1, 2] = [255, 0, 0]
  log.figures({'colour_maps': (figure, 'a caption'), 'grid': (figure[::-1], '')}, 7)
  log.close()
  values = [(e.step, v) for e in _events(tmp_path / 'tensorboard') for v in e.summary.value]
  scalars = {(step, v.tag): v.simple_value for step, v in values if v.HasField('simple_value')}
  assert scalars == {(3, 'train/total'): 2.5, (3, 'train/kp'): 0.5}
  images = {(step, v.tag): v.image for step, v in values if v.HasField('image')}
  assert sorted(images) == [(7, 'figures/colour_maps'), (7, 'figures/grid')]
  with Image.open(io.BytesIO(images[7, 'figures/colour_maps'].encoded_image_string)) as image:
    np.testing.assert_array_equal(np.asarray(image), figure)
