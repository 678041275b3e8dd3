"""The workdir lock: one holder at a time, named to the next; a dead holder's lock taken over
with a warning; a live holder on this host never, even where flock does not reach."""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from asic_jax import lock
from asic_jax.errors import WorkdirLocked


def _dead_pid() -> int:
  """The pid of a process that has ended."""
  child = subprocess.Popen([sys.executable, '-c', 'pass'])
  child.wait()
  return child.pid


def test_a_held_lock_refuses_the_next_naming_its_holder(tmp_path):
  held = lock.acquire(tmp_path)
  record = json.loads((tmp_path / lock.NAME).read_text())
  assert record['pid'] == os.getpid() and record['host'] == socket.gethostname()
  # flock belongs to an open file, so a second acquire in this very process is refused too.
  with pytest.raises(WorkdirLocked,
                     match=rf'{tmp_path} is in use by another training run \(pid {os.getpid()} '
                     rf'on host {socket.gethostname()}, started .*\); wait for it'):
    lock.acquire(tmp_path)
  held.release()
  assert not (tmp_path / lock.NAME).exists()
  lock.acquire(tmp_path).release()  # free again


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
  pid = _dead_pid()
  (tmp_path / lock.NAME).write_text(
      json.dumps(
          dict(host=socket.gethostname(),
               pid=pid,
               started='2026-01-01 10:00:00',
               command=['python', '-m', 'asic_jax.main'])))
  with caplog.at_level(logging.WARNING, logger='asic_jax'):
    held = lock.acquire(tmp_path)
  assert f'from pid {pid} on host {socket.gethostname()}' in caplog.text
  assert 'that process is gone' in caplog.text
  assert json.loads((tmp_path / lock.NAME).read_text())['pid'] == os.getpid()
  held.release()


def test_a_lock_file_of_a_live_process_here_is_never_taken_over(tmp_path):
  """On a filesystem where flock does not reach other processes, the file alone still
  refuses: its holder runs on this host (pid and start time checked)."""
  holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
  try:
    (tmp_path / lock.NAME).write_text(
        json.dumps(
            dict(host=socket.gethostname(),
                 pid=holder.pid,
                 process_start=lock._process_start(holder.pid))))  # pylint: disable=protected-access
    with pytest.raises(WorkdirLocked, match=f'pid {holder.pid} on host'):
      lock.acquire(tmp_path)  # no flock is held: only the record refuses
  finally:
    holder.kill()
    holder.wait()
  # A reused pid (another start time) is not the holder: taken over.
  (tmp_path / lock.NAME).write_text(
      json.dumps(dict(host=socket.gethostname(), pid=os.getppid(), process_start='other:0')))
  lock.acquire(tmp_path).release()


def test_hold_removes_a_workdir_it_made_when_nothing_was_written(tmp_path):
  workdir = tmp_path / 'a' / 'run'
  with lock.hold(workdir):
    assert (workdir / lock.NAME).is_file()
  assert not (tmp_path / 'a').exists()
  with lock.hold(workdir):
    (workdir / 'config.json').write_text('{}')
  assert sorted(p.name for p in workdir.iterdir()) == ['config.json']


def test_only_a_killed_holder_frees_the_lock_for_another_process(tmp_path):
  """A second process is refused while the first holds the lock; once the first is killed
  (SIGKILL: no clean-up of its own), the lock is free and its record named as taken over."""
  code = ('import sys, time; sys.path.insert(0, sys.argv[2]); from asic_jax import lock; '
          'lock.acquire(sys.argv[1]); print("held", flush=True); time.sleep(60)')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  holder = subprocess.Popen(
      [sys.executable, '-c', code, str(tmp_path), root], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(WorkdirLocked, match=f'pid {holder.pid} on host'):
      lock.acquire(tmp_path)
  finally:
    holder.kill()
    holder.wait()
  lock.acquire(tmp_path).release()
