"""The workdir lock: one training run per workdir at a time.

`WORKDIR/train.lock` names its holder (host, pid, start time, command line) and is held by an
exclusive `flock` on it, which the kernel drops when the holder ends however it ends (SIGKILL,
a crash, a lost node), so no dead process ever keeps it. A lock file whose holder is gone (its
flock free, its pid not running) is taken over with a warning naming that holder; while the
holder runs, `acquire` raises `WorkdirLocked` naming it. As a second guard, for filesystems
where flock does not reach other processes, a lock file naming a process still running on
this host is never taken over. A clean exit removes the file.

Only training takes it: it alone writes checkpoints, `metrics.jsonl` and TensorBoard events.
`eval`, `visualize`, `map` and `baseline` read checkpoints (Orbax lists only finished ones)
and write their outputs atomically, so they run beside a training run unhindered.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import pathlib
import socket
import sys
from typing import Iterator

from asic_jax import safe_io
from asic_jax.errors import WorkdirLocked

log = logging.getLogger(__name__)

NAME = 'train.lock'
# Errors of a flock that another process holds, and of filesystems without flock.
_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
_UNSUPPORTED = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


def _process_start(pid: int) -> str | None:
  """An identity of process `pid` that a reused pid does not share: this boot's id and the
  process's start time in clock ticks (Linux); None elsewhere."""
  try:
    boot = pathlib.Path('/proc/sys/kernel/random/boot_id').read_text().strip()
    stat = pathlib.Path(f'/proc/{pid}/stat').read_text()
    return f'{boot}:{stat.rsplit(")", 1)[1].split()[19]}'
  except (OSError, IndexError):
    return None


def _running_here(holder: dict) -> bool:
  """Whether the lock file's holder is a process running on this host now."""
  if holder.get('host') != socket.gethostname() or not isinstance(holder.get('pid'), int):
    return False
  if not safe_io.process_alive(holder['pid']):
    return False
  start = _process_start(holder['pid'])
  return start is None or holder.get('process_start') in (None, start)


def describe(holder: dict) -> str:
  """'pid 123 on host h, started 2026-01-02 10:00:00 (python -m asic_jax.main ...)'."""
  command = ' '.join(holder.get('command', []))
  return (f'pid {holder.get("pid", "?")} on host {holder.get("host", "?")}, started '
          f'{holder.get("started", "?")}' + (f' ({command[:200]})' if command else ''))


def _read(fd: int) -> dict:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    holder = json.loads(os.read(fd, 1 << 16).decode())
    return holder if isinstance(holder, dict) else {}
  except (OSError, ValueError):
    return {}  # empty (just created) or damaged: nobody to name


class Lock:
  """A held workdir lock; `release()` (or the end of `hold`'s block) gives it up."""

  def __init__(self, path: pathlib.Path, fd: int):
    self.path, self._fd = path, fd

  def release(self) -> None:
    """Removes the lock file, then drops the flock (in this order, so that a process waiting
    on the old file sees it gone and starts afresh). A second call does nothing."""
    if self._fd is None:
      return
    if self in _HELD_LOCKS:
      _HELD_LOCKS.remove(self)
    try:
      if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
        os.unlink(self.path)
    except OSError:
      pass  # removed by hand already; the flock still goes with the descriptor
    os.close(self._fd)
    self._fd = None


_HELD_LOCKS: list[Lock] = []


def acquire(workdir: str | os.PathLike) -> Lock:
  """Takes `WORKDIR/train.lock` (the workdir must exist).

  Raises:
    WorkdirLocked: another process holds it; the message names that process.
  """
  path = pathlib.Path(workdir) / NAME
  while True:
    with safe_io.writing(path):
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in _HELD + _UNSUPPORTED:
        os.close(fd)
        raise
      if e.errno in _HELD:
        holder = _read(fd)
        os.close(fd)
        raise _locked(workdir, holder) from None
    try:
      same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if not same:  # its holder removed it as we opened it: lock the new file instead
      os.close(fd)
      continue
    holder = _read(fd)
    if holder and holder.get('pid') != os.getpid() and _running_here(holder):
      os.close(fd)  # flock let us in, yet its holder runs: flock does not work here
      raise _locked(workdir, holder)
    if holder:
      log.warning('Took over %s from %s: that process is gone (it ended without releasing it)',
                  path, describe(holder))
    _write(fd, path)
    lock = Lock(path, fd)
    _HELD_LOCKS.append(lock)
    return lock


def _write(fd: int, path: pathlib.Path) -> None:
  record = dict(host=socket.gethostname(),
                pid=os.getpid(),
                process_start=_process_start(os.getpid()),
                started=datetime.datetime.now().isoformat(sep=' ', timespec='seconds'),
                command=[os.path.basename(sys.executable)] + sys.argv)
  with safe_io.writing(path):
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(record) + '\n').encode())
    os.fsync(fd)


def _locked(workdir, holder: dict) -> WorkdirLocked:
  who = describe(holder) if holder else 'another process'
  return WorkdirLocked(f'{workdir} is in use by another training run ({who}); wait for it to '
                       'end or stop it: two runs in one workdir would overwrite each other\'s '
                       'checkpoints and logs')


@contextlib.contextmanager
def hold(workdir: str | os.PathLike) -> Iterator[Lock]:
  """`acquire` for the block's duration. The workdir (and missing folders above it) is made
  for the lock and removed again at the end when nothing else was written in it."""
  workdir = pathlib.Path(workdir).absolute()
  made = []
  folder = workdir
  while not folder.exists():
    made.append(folder)
    folder = folder.parent
  with safe_io.writing(workdir):
    workdir.mkdir(parents=True, exist_ok=True)
  try:
    lock = acquire(workdir)
  except BaseException:
    _remove_empty(made)
    raise
  try:
    yield lock
  finally:
    lock.release()
    _remove_empty(made)


def _remove_empty(folders: list[pathlib.Path]) -> None:
  for folder in folders:  # deepest first
    try:
      folder.rmdir()
    except OSError:
      return  # not empty: the run wrote something, keep it (and everything above)


def release_all() -> None:
  """Releases every lock this process holds (before an immediate exit, too)."""
  for lock in list(_HELD_LOCKS):
    lock.release()
