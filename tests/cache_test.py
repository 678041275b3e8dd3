"""Tests of asic_jax.correspondences.cache: keys change with every input they hash and only
then, entries are whole and checked, and one that cannot be trusted is recomputed."""

import logging

import numpy as np
import pytest

from asic_jax.correspondences import cache as cache_lib


def test_array_digests_see_bytes_dtype_shape_and_order():
  x = np.arange(6, dtype=np.int32)
  digest = cache_lib.digest_arrays([x])
  assert digest == cache_lib.digest_arrays([x.copy()])
  assert digest == cache_lib.digest_arrays([np.asfortranarray(x.reshape(1, 6)).ravel()])
  assert digest != cache_lib.digest_arrays([x.astype(np.int64)])  # same values, other bytes
  assert digest != cache_lib.digest_arrays([x.view(np.float32)])  # same bytes, other dtype
  assert digest != cache_lib.digest_arrays([x.reshape(2, 3)])  # same bytes, other shape
  y = np.ones(2)
  assert cache_lib.digest_arrays([x, y]) != cache_lib.digest_arrays([y, x])


def test_file_digests_see_names_and_contents(tmp_path):
  (tmp_path / 'a.png').write_bytes(b'pixels')
  (tmp_path / 'b.png').write_bytes(b'pixels')
  a, b = tmp_path / 'a.png', tmp_path / 'b.png'
  assert cache_lib.digest_files([a]) != cache_lib.digest_files([b])  # the name counts
  before = cache_lib.digest_files([a, b])
  a.write_bytes(b'pixelz')
  assert cache_lib.digest_files([a, b]) != before


def test_keys_hash_settings_in_any_order_digests_and_the_format(monkeypatch):
  key = cache_lib.make_key({'a': 1, 'b': 'x'}, 'd1')
  assert len(key) == 40 and int(key, 16) >= 0
  assert key == cache_lib.make_key({'b': 'x', 'a': 1}, 'd1')
  assert key != cache_lib.make_key({'a': 2, 'b': 'x'}, 'd1')
  assert key != cache_lib.make_key({'a': 1, 'b': 'x'}, 'd2')
  assert key != cache_lib.make_key({'a': 1, 'b': 'x'}, 'd1', 'd2')
  monkeypatch.setattr(cache_lib, 'FORMAT', cache_lib.FORMAT + 1)  # old entries then miss
  assert key != cache_lib.make_key({'a': 1, 'b': 'x'}, 'd1')


def test_the_default_directory_is_the_users(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert cache_lib.default_directory() == tmp_path / 'asic_jax'
  assert cache_lib.Cache().directory == tmp_path / 'asic_jax'
  monkeypatch.delenv('XDG_CACHE_HOME')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  assert cache_lib.default_directory() == tmp_path / 'home' / '.cache' / 'asic_jax'


def test_entries_are_checked_and_written_atomically(tmp_path):
  cache = cache_lib.Cache(tmp_path)
  key = cache_lib.make_key({'a': 1}, 'digest')
  assert cache.load('kind', key, ['x']) is None
  path = cache.save('kind', key, {'x': np.arange(3)})
  assert path == tmp_path / 'kind' / f'{key}.npz'
  assert [p.name for p in (tmp_path / 'kind').iterdir()] == [path.name]  # no temporary left
  np.testing.assert_array_equal(cache.load('kind', key, ['x'])['x'], np.arange(3))
  # A file under the right name with another key inside is stale: never trusted.
  other = cache_lib.make_key({'a': 2}, 'digest')
  cache.path('kind', other).write_bytes(cache.path('kind', key).read_bytes())
  assert cache.load('kind', other, ['x']) is None and not cache.path('kind', other).exists()
  assert cache.load('kind', key, ['x', 'y']) is None  # a missing field


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'pickled'])
def test_an_entry_that_does_not_read_is_deleted_with_a_warning(tmp_path, caplog, damage):
  cache = cache_lib.Cache(tmp_path)
  key = cache_lib.make_key({}, 'd')
  path = cache.save('kind', key, {'x': np.arange(1000)})
  if damage == 'truncated':
    path.write_bytes(path.read_bytes()[:200])
  elif damage == 'garbage':
    path.write_bytes(b'not a zip file at all')
  else:  # an object array: loading it would run pickle, which the cache refuses
    np.savez(path, x=np.asarray([{'a': 1}], dtype=object), __cache_key__=np.asarray(key))
  with caplog.at_level(logging.WARNING):
    assert cache.load('kind', key, ['x']) is None
  assert not path.exists()
  assert 'Ignoring an unreadable cache entry' in caplog.text
