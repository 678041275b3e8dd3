"""Tests of asic_jax.training_collection: the collection a run trains on is the loader's, with
pseudo-matches extracted only where the dataset brings none, and the same on every process."""

import jax
import numpy as np
import pytest
from jax.experimental import multihost_utils
from PIL import Image

from asic_jax import training_collection
from asic_jax.correspondences import extract
from asic_jax.data import loaders
from asic_jax.errors import UserError
from conftest import load_config


def _refuse(*args, **kwargs):
  raise AssertionError('extracted correspondences the collection already had')


def test_the_synthetic_collection_keeps_its_exact_matches(monkeypatch):
  monkeypatch.setattr(extract, 'add_correspondences', _refuse)
  config = load_config('tiny')
  collection = training_collection.load(config)
  loaded = loaders.load_collection(config)
  np.testing.assert_array_equal(collection.matches, loaded.matches)
  assert collection.matches.shape[0] == len(collection.pairs) > 0


def test_photos_get_their_correspondences_from_the_extraction(monkeypatch, tmp_path):
  for i in range(3):
    Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(tmp_path / f'p{i}.png')
  config = load_config('folder', **{'data.path': str(tmp_path), 'data.img_size': 32})
  seen = []

  def add(collection, cfg):
    seen.append((collection.names, cfg))
    return collection.replace(pairs=np.asarray([[0, 1]]), matches=np.ones((1, 2, 5), np.float32))

  monkeypatch.setattr(extract, 'add_correspondences', add)
  collection = training_collection.load(config)
  assert seen == [(('p0', 'p1', 'p2'), config)]
  np.testing.assert_array_equal(collection.pairs, [[0, 1]])


def test_processes_that_built_different_collections_stop(monkeypatch):
  config = load_config('tiny')
  collection = loaders.load_collection(config)
  monkeypatch.setattr(jax, 'process_count', lambda: 3)
  gathered = []

  def allgather(digest, differ=()):
    rows = np.stack([digest] * 3)
    for i in differ:
      rows[i, 0] ^= 1
    gathered.append(digest)
    return rows

  monkeypatch.setattr(multihost_utils, 'process_allgather', allgather)
  np.testing.assert_array_equal(training_collection.load(config).matches, collection.matches)
  monkeypatch.setattr(multihost_utils, 'process_allgather', lambda d: allgather(d, (1, 2)))
  with pytest.raises(UserError, match=r'processes \[1, 2\] built a different collection'):
    training_collection.load(config)
  # The digest is of the collection's arrays: 32 bytes of SHA-256, the same each time.
  assert len(gathered[0]) == 32 and np.array_equal(gathered[0], gathered[1])
