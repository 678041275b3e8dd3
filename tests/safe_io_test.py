"""Writes that are whole or absent, a full device named in one error, damaged JSON set aside,
folders of outputs replaced whole."""

import errno
import logging
import os
import subprocess
import sys

import pytest

from asic_jax import safe_io
from asic_jax.errors import DiskFull


def test_a_full_device_is_recognised_however_a_library_wraps_it():
  assert safe_io.is_disk_full(OSError(errno.ENOSPC, 'No space left on device'))
  assert safe_io.is_disk_full(OSError(errno.EDQUOT, 'Disk quota exceeded'))
  # TensorStore (under Orbax) reports it as text in a ValueError.
  assert safe_io.is_disk_full(
      ValueError('RESOURCE_EXHAUSTED: Error writing "x": Failed to write 2961408 bytes to file 7: '
                 "No space left on device [os_error_code='28']"))
  try:
    try:
      raise OSError(errno.ENOSPC, 'full')
    except OSError as e:
      raise RuntimeError('save failed') from e
  except RuntimeError as wrapped:
    assert safe_io.is_disk_full(wrapped)
  assert not safe_io.is_disk_full(OSError(errno.EACCES, 'Permission denied'))
  assert not safe_io.is_disk_full(ValueError('bad value'))


def test_a_write_that_finds_the_device_full_names_the_path_and_leaves_the_old_file(tmp_path):
  path = tmp_path / 'results.json'
  path.write_text('{"old": true}')

  def full(f):
    f.write(b'{"new": ')
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  with pytest.raises(DiskFull) as caught:
    safe_io.write_atomic(path, full)
  free = safe_io.human_size(safe_io.free_space(tmp_path))
  assert str(caught.value) == f'no space left on device writing {path} ({free} free there)'
  assert path.read_text() == '{"old": true}'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['results.json']  # no temporary left
  assert str(safe_io.disk_full(path, needed=5 * 2**20)).endswith(', about 5.0 MB needed)')


def test_a_temporary_left_by_a_killed_process_goes_at_the_next_write(tmp_path):
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  leftover = tmp_path / f'.report.html.{dead.pid}-abc.tmp'
  leftover.write_text('half')
  mine = tmp_path / f'.report.html.{os.getpid()}-def.tmp'  # a write of a live process
  mine.write_text('busy')
  safe_io.write_text_atomic(tmp_path / 'report.html', 'page')
  assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, 'report.html']


def test_json_that_does_not_read_is_set_aside_with_a_warning(tmp_path, caplog):
  path = tmp_path / 'results.json'
  assert safe_io.read_json(path) is None  # missing: nothing to say
  for content in (b'{"pck": {"0.10": 0.4', b'\xff\xfe\x00garbage'):
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger='asic_jax'):
      assert safe_io.read_json(path, 'run --config.mode=eval') is None
    assert not path.exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      'results.json.unreadable', 'results.json.unreadable.1'
  ]
  assert (tmp_path / 'results.json.unreadable.1').read_bytes() == b'\xff\xfe\x00garbage'
  assert 'results.json does not read (JSONDecodeError' in caplog.text
  assert 'moved to results.json.unreadable; run --config.mode=eval' in caplog.text


def test_a_staged_folder_replaces_the_old_one_whole_or_not_at_all(tmp_path):
  out = tmp_path / 'map' / 'photos'
  with safe_io.staged_folder(out) as stage:
    (stage / 'a.png').write_text('a')
    (stage / 'b.png').write_text('b')
  with safe_io.staged_folder(out) as stage:
    (stage / 'b.png').write_text('b2')
  assert sorted(p.name for p in out.iterdir()) == ['b.png']  # a.png of the last run is gone
  with pytest.raises(RuntimeError):
    with safe_io.staged_folder(out) as stage:
      (stage / 'c.png').write_text('c')
      raise RuntimeError('failed half-way')
  assert sorted(p.name for p in out.iterdir()) == ['b.png'] and (out / 'b.png').read_text() == 'b2'
  assert sorted(p.name for p in out.parent.iterdir()) == ['photos']  # no staging folder left


def test_leftovers_are_recognised_whatever_the_name_holds(tmp_path):
  """File names with glob characters ('[', '*') are matched literally."""
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  name = 'bird[1]*.png'
  (tmp_path / f'.{name}.{dead.pid}-abc.tmp').write_text('half')
  (tmp_path / f'.bird1x.png.{dead.pid}-abc.tmp').write_text('another file\'s')
  safe_io.write_text_atomic(tmp_path / name, 'png')
  assert sorted(p.name for p in tmp_path.iterdir()) == [f'.bird1x.png.{dead.pid}-abc.tmp', name]
