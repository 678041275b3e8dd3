"""Atomic file writes: a temporary file in the same folder, renamed into place, so a reader
(or a later run after a crash) never sees half a file."""

import os
import pathlib
import tempfile
from typing import BinaryIO, Callable


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> pathlib.Path:
  """Calls `write(f)` on a temporary file beside `path`, then renames it to `path`; on any
  failure the temporary file is removed and `path` is left as it was."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
  try:
    with os.fdopen(handle, 'wb') as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except BaseException:
    pathlib.Path(temporary).unlink(missing_ok=True)
    raise
  return path


def write_text_atomic(path: str | os.PathLike, text: str) -> pathlib.Path:
  """`write_atomic` of UTF-8 text."""
  return write_atomic(path, lambda f: f.write(text.encode()))
