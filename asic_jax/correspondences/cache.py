"""An on-disk cache of extraction results: `.npz` files keyed by content hashes.

An entry is `<directory>/<kind>/<key>.npz`, where the key is a hash of everything its
contents depend on (image bytes, every extraction setting, the model's weights). Entries
are written to a temporary file in the same folder and renamed into place, so a reader
never sees half a file; an entry that fails to load (truncated, corrupt, written by other
code under the same name, or missing a field) is deleted and recomputed, never trusted.
Entries hold arrays only: they are read with `allow_pickle=False`.

The default directory is one per user, shared by every run
(`$XDG_CACHE_HOME/asic_jax` or `~/.cache/asic_jax`), so two runs on the same collection
extract once.
"""

import hashlib
import json
import logging
import os
import pathlib
import zipfile
from typing import Any, Iterable

import numpy as np

from asic_jax import safe_io

log = logging.getLogger(__name__)

# Bump when the layout or meaning of an entry changes: old entries then miss.
# 2: training pairs never join two identical images (`pairs.training_pairs`).
# 3: no part maps without a foreground (`features.masks='none'`).
# 4: the orientation (`flipped`) of every image (`features.orient`).
FORMAT = 4
_KEY_FIELD = '__cache_key__'


def default_directory() -> pathlib.Path:
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return pathlib.Path(base) / 'asic_jax'


def digest_arrays(arrays: Iterable[np.ndarray]) -> str:
  """A hash of arrays' dtypes, shapes and bytes, in order."""
  h = hashlib.sha256()
  for array in arrays:
    array = np.ascontiguousarray(array)
    h.update(f'{array.dtype.str}{array.shape}'.encode())
    h.update(array.tobytes())
  return h.hexdigest()


def digest_files(paths: Iterable[str | os.PathLike]) -> str:
  """A hash of files' names and contents, in order."""
  h = hashlib.sha256()
  for path in paths:
    path = pathlib.Path(path)
    h.update(path.name.encode())
    with path.open('rb') as f:
      for chunk in iter(lambda: f.read(1 << 20), b''):
        h.update(chunk)
  return h.hexdigest()


def make_key(settings: dict[str, Any], *digests: str) -> str:
  """The key of an entry: a hash of its settings (JSON) and content digests."""
  text = json.dumps(dict(settings, format=FORMAT), sort_keys=True, default=str)
  return hashlib.sha256('\n'.join((text,) + digests).encode()).hexdigest()[:40]


class Cache:
  """Cache entries of several kinds in one directory."""

  def __init__(self, directory: str | os.PathLike | None = None):
    self.directory = pathlib.Path(directory) if directory else default_directory()

  def path(self, kind: str, key: str) -> pathlib.Path:
    return self.directory / kind / f'{key}.npz'

  def load(self, kind: str, key: str, fields: Iterable[str]) -> dict[str, np.ndarray] | None:
    """The entry's arrays, or None when it is absent or cannot be trusted (then deleted)."""
    path = self.path(kind, key)
    if not path.exists():
      return None
    try:
      with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}  # reading checks every CRC
      stored = str(arrays.pop(_KEY_FIELD))
      missing = [name for name in fields if name not in arrays]
      if stored != key or missing:
        raise ValueError(f'stale entry (key {stored[:12]}..., missing {missing})')
      return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
      log.warning('Ignoring an unreadable cache entry %s (%s); recomputing', path, e)
      path.unlink(missing_ok=True)
      return None

  def save(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> pathlib.Path:
    """Writes the entry atomically (temporary file, then rename); returns its path."""
    return safe_io.write_atomic(self.path(kind, key),
                                lambda f: np.savez(f, **arrays, **{_KEY_FIELD: np.asarray(key)}))
