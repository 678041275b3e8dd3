"""Writing files so that nothing is ever half-written, and reading back what may be damaged.

Writes go to a temporary file in the same folder, renamed into place, so a reader (or a later
run after a crash) never sees half a file; a folder of outputs is built beside its place and
swapped in whole (`staged_folder`). Temporaries carry their process's pid, so that what a
killed process left is recognised and removed by the next write. A write that finds its
device full is one `DiskFull` naming the path and the space left there. A JSON file a run reads back and cannot parse is
set aside beside itself (`<name>.unreadable`), never deleted, with a warning.
"""

import contextlib
import errno
import glob
import json
import logging
import os
import pathlib
import shutil
import tempfile
from typing import Any, BinaryIO, Callable, Iterator

from asic_jax.errors import DiskFull, UserError

log = logging.getLogger(__name__)

# Temporary files and folders being written now: an immediate exit (a second Ctrl-C, SIGTERM
# outside the training loop) removes them rather than leaving them behind (`remove_pending`).
_PENDING: set[pathlib.Path] = set()
_FULL = (errno.ENOSPC, errno.EDQUOT)
# mkstemp makes files only their owner reads; what we write gets the usual permissions.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
# TensorStore (under Orbax) reports the errno only in its message.
_FULL_TEXT = ('No space left on device', 'Disk quota exceeded', "os_error_code='28'")


def is_disk_full(error: BaseException) -> bool:
  """Whether `error`, or an exception it was raised from, is a full device or quota."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _FULL:
      return True
    if any(text in str(error) for text in _FULL_TEXT):
      return True
    error = error.__cause__ or error.__context__
  return False


def human_size(num_bytes: float) -> str:
  """'5.5 MB': bytes in the largest unit that keeps the number >= 1 (powers of 1024)."""
  for unit in ('B', 'KB', 'MB', 'GB'):
    if num_bytes < 1024 or unit == 'GB':
      return f'{num_bytes:.0f} {unit}' if unit == 'B' else f'{num_bytes:.1f} {unit}'
    num_bytes /= 1024
  raise AssertionError('unreachable')


def free_space(path: str | os.PathLike) -> int | None:
  """Bytes free on the filesystem holding `path` (its nearest existing folder); None when
  that cannot be read."""
  path = pathlib.Path(path).absolute()
  while not path.exists() and path != path.parent:
    path = path.parent
  try:
    return shutil.disk_usage(path).free
  except OSError:
    return None


def disk_full(path: str | os.PathLike, needed: int | None = None) -> DiskFull:
  """The `DiskFull` of a write to `path`: the space free there and, when known, needed."""
  free = free_space(path)
  have = f'{human_size(free)} free there' if free is not None else 'the free space unknown'
  need = f', about {human_size(needed)} needed' if needed else ''
  return DiskFull(f'no space left on device writing {path} ({have}{need})')


@contextlib.contextmanager
def writing(path: str | os.PathLike, needed: int | None = None) -> Iterator[None]:
  """Turns a full device met inside into `DiskFull` naming `path`."""
  try:
    yield
  except DiskFull:
    raise
  except Exception as e:  # pylint: disable=broad-except  # OSError, or a library's wrapper
    if is_disk_full(e):
      raise disk_full(path, needed) from None
    raise


def _remove_leftovers(path: pathlib.Path, suffix: str) -> None:
  """Removes `.<name>.<pid>-*<suffix>` beside `path` that a killed process `pid` left."""
  for stale in path.parent.glob(f'.{glob.escape(path.name)}.*-*{suffix}'):
    pid = stale.name[len(path.name) + 2:].split('-')[0]
    if pid.isdigit() and not process_alive(int(pid)):
      if stale.is_dir():
        shutil.rmtree(stale, ignore_errors=True)
      else:
        stale.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> pathlib.Path:
  """Calls `write(f)` on a temporary file beside `path`, then renames it to `path`; on any
  failure the temporary file is removed and `path` is left as it was. A full device raises
  `DiskFull` naming `path`. A temporary file a killed process left is removed."""
  path = pathlib.Path(path)
  with writing(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path, '.tmp')
    handle, temporary = tempfile.mkstemp(prefix=f'.{path.name}.{os.getpid()}-',
                                         suffix='.tmp',
                                         dir=path.parent)
    temporary = pathlib.Path(temporary)
    _PENDING.add(temporary)
    try:
      os.fchmod(handle, 0o666 & ~_UMASK)
      with os.fdopen(handle, 'wb') as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
      os.replace(temporary, path)
    except BaseException:
      temporary.unlink(missing_ok=True)
      raise
    finally:
      _PENDING.discard(temporary)
  return path


def write_text_atomic(path: str | os.PathLike, text: str) -> pathlib.Path:
  """`write_atomic` of UTF-8 text."""
  return write_atomic(path, lambda f: f.write(text.encode()))


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """A fresh folder beside `path` to write a set of outputs into; when the block ends
  without an error it replaces `path` whole (a rerun never leaves a file of an earlier run
  beside the new ones), else it is removed and `path` stays as it was. What a killed
  process left is removed first."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  _remove_leftovers(path, '.partial')
  staging = pathlib.Path(
      tempfile.mkdtemp(prefix=f'.{path.name}.{os.getpid()}-', suffix='.partial', dir=path.parent))
  _PENDING.add(staging)
  try:
    with writing(path):
      yield staging
      if path.exists():
        # A folder cannot be renamed over a non-empty one: the old set is renamed aside
        # first (a kill in between leaves it there, for the next run to remove).
        old = staging.with_name(f'.{path.name}.{os.getpid()}-old.partial')
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
        os.rename(staging, path)
        shutil.rmtree(old, ignore_errors=True)
      else:
        os.rename(staging, path)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
    _PENDING.discard(staging)


def process_alive(pid: int) -> bool:
  """Whether a process `pid` runs on this host (one we may not signal counts as running)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def remove_pending() -> None:
  """Removes every temporary file or folder a write in progress holds (before an immediate
  exit, which skips the writes' own clean-up)."""
  for path in list(_PENDING):
    if path.is_dir():
      shutil.rmtree(path, ignore_errors=True)
    else:
      path.unlink(missing_ok=True)
  _PENDING.clear()


def set_aside(path: str | os.PathLike,
              why: str,
              hint: str = '',
              *,
              keep: bool = False) -> pathlib.Path:
  """Moves a damaged `path` to `<path>.unreadable` (`.unreadable.1`, ... when taken), kept
  for a look (`keep`: a copy, `path` stays), and warns naming both, the reason and `hint`
  (what rebuilds it)."""
  path = pathlib.Path(path)
  aside = path.with_name(f'{path.name}.unreadable')
  n = 0
  while aside.exists():
    n += 1
    aside = path.with_name(f'{path.name}.unreadable.{n}')
  if keep:
    write_atomic(aside, lambda f: f.write(path.read_bytes()))
  else:
    os.replace(path, aside)
  log.warning('%s does not read (%s); %s %s%s', path, why, 'copied to' if keep else 'moved to',
              aside.name, f'; {hint}' if hint else '')
  return aside


def read_json(path: str | os.PathLike, hint: str = '') -> Any:
  """The JSON in `path`; None when there is no such file, or when it does not parse (then
  it is set aside, `set_aside`, with `hint`: what rebuilds it)."""
  path = pathlib.Path(path)
  try:
    return json.loads(path.read_bytes().decode())
  except FileNotFoundError:
    return None
  except ValueError as e:  # JSONDecodeError and UnicodeDecodeError alike
    set_aside(path, f'{type(e).__name__}: {str(e)[:120]}', hint)
    return None
  except OSError as e:
    raise UserError(f'cannot read {path}: {e.strerror or e}') from None
