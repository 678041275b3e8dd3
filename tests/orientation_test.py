"""Orientation-aware alignment: the joint decision, its guard, and new photos."""

import numpy as np
import pytest

from asic_jax.correspondences import extract, orientation
from asic_jax.data import pairs as pairs_lib
from conftest import load_config


def test_solve_recovers_planted_orientations_from_noisy_agreement():
  rng = np.random.default_rng(0)
  truth = np.where(rng.random(20) < 0.4, -1.0, 1.0)
  a = 0.1 * np.outer(truth, truth) + rng.normal(0, 0.15, (20, 20))
  a = (a + a.T) / 2
  np.fill_diagonal(a, 0)
  signs = orientation.solve(a)
  assert np.array_equal(signs, truth) or np.array_equal(signs, -truth)
  assert (signs < 0).sum() <= 10  # the global mirror is free: the fewer flips


def test_guard_keeps_only_flips_its_evidence_supports():
  rng = np.random.default_rng(1)
  truth = np.ones(16)
  truth[:3] = -1
  a = 0.2 * np.outer(truth, truth) + rng.normal(0, 0.05, (16, 16))
  a = (a + a.T) / 2
  np.fill_diagonal(a, 0)
  a[5, :] *= 0.0  # image 5 has no evidence either way ...
  a[:, 5] *= 0.0
  claimed = truth.copy()
  claimed[5] = -1  # ... so a flip of it is undone
  kept = orientation.guard(a, claimed, min_t=3.0)
  np.testing.assert_array_equal(kept < 0, truth < 0)
  t = orientation.evidence(a, truth)
  assert t[:3].min() > 3.0 and t[6:].min() > 3.0
  # Noise alone supports no flip at all.
  noise = rng.normal(0, 0.05, (16, 16))
  noise = (noise + noise.T) / 2
  np.fill_diagonal(noise, 0)
  assert not (orientation.guard(noise, orientation.solve(noise), 3.0) < 0).any()


def test_mirror_grid_pick_and_pool_keep_cells_on_their_mirrors():
  grid = np.arange(2 * 3 * 4 * 1, dtype=np.float32).reshape(2, 3, 4, 1)
  np.testing.assert_array_equal(orientation.mirror_grid(grid)[:, :, 0], grid[:, :, 3])
  picked = orientation.pick(grid, orientation.mirror_grid(grid), np.asarray([False, True]))
  np.testing.assert_array_equal(picked[0], grid[0])
  np.testing.assert_array_equal(picked[1], grid[1][:, ::-1])
  # A 70 x 70 grid pools 3 x 3 onto 23 x 23 cells, cropped symmetrically: the pooled grid of
  # mirrored descriptors is the mirrored pooled grid.
  rng = np.random.default_rng(2)
  big = rng.normal(size=(1, 70, 70, 4)).astype(np.float32)
  fg = np.ones((1, 70, 70))
  pooled, _ = orientation._pool(big, fg)
  pooled_m, _ = orientation._pool(big[:, :, ::-1], fg)
  assert pooled.shape[1:3] == (23, 23)
  np.testing.assert_allclose(pooled_m, pooled[:, :, ::-1], atol=1e-6)


@pytest.fixture(scope='module')
def duck(data_dir):
  """PF-WILLOW duck at the cpu shape (128 px, VGG-16); every duck faces the same way."""
  config = load_config('pfwillow', 'duck,cpu', **{'data.root': str(data_dir)})
  from asic_jax.data import loaders  # pylint: disable=import-outside-toplevel
  collection = loaders.load_collection(config)
  return config, collection


def _decide(config, collection, planted):
  images = np.where(planted[:, None, None, None], collection.images[:, :, ::-1], collection.images)
  found = extract.extract_descriptors(images, config)
  mirrored = extract.mirrored_descriptors(images, config)
  areas = np.where(planted[:, None, None],
                   collection.photo_areas()[:, :, ::-1], collection.photo_areas())
  fg = extract.patch_foreground(areas, found.centers) >= 0.5
  pairs = pairs_lib.all_pairs(len(images))
  return orientation.decide(found.match, mirrored.match, fg, pairs, min_t=3.0), found, mirrored, fg


def test_real_photos_facing_one_way_are_not_flipped_and_planted_mirrors_are_found(duck):
  """PF-WILLOW's ducks all face one way: nothing is flipped. Mirror three of them and the
  decision flips those three back, and no other."""
  config, collection = duck
  none = np.zeros(len(collection), bool)
  assert not _decide(config, collection, none)[0].flipped.any()
  planted = none.copy()
  planted[[1, 4, 7]] = True
  decision, found, mirrored, fg = _decide(config, collection, planted)
  np.testing.assert_array_equal(decision.flipped, planted)
  assert decision.gain > 0
  # New photos against the other eight as oriented: image 4 as planted (mirrored) is flipped,
  # image 2 as it is is not.
  rest = np.asarray([i for i in range(len(planted)) if i not in (2, 4)])
  new = orientation.decide_new(found.match[[4, 2]],
                               mirrored.match[[4, 2]],
                               fg[[4, 2]],
                               found.match[rest],
                               fg[rest],
                               decision.flipped[rest],
                               min_t=3.0)
  np.testing.assert_array_equal(new, [True, False])


def test_extraction_with_orientation_matches_in_each_photos_own_pixels(duck, tmp_path):
  """Mirror three ducks: extraction flips them back, and every pair's pseudo-matches are
  those of the unmirrored collection with the mirrored photos' x mirrored (the network will
  see them as the others are; matches stay in each photo's own pixels)."""
  config, collection = duck
  config.features.orient = True
  config.features.cache_dir = str(tmp_path)
  plain = extract.add_correspondences(collection, config)
  assert plain.flipped is not None and not plain.flipped.any()
  planted = np.zeros(len(collection), bool)
  planted[[1, 4, 7]] = True
  mirrored = collection.replace(images=np.ascontiguousarray(
      np.where(planted[:, None, None, None], collection.images[:, :, ::-1], collection.images)))
  oriented = extract.add_correspondences(mirrored, config)
  np.testing.assert_array_equal(oriented.flipped, planted)
  np.testing.assert_array_equal(oriented.pairs, plain.pairs)
  size = collection.size
  for p, (a, b) in enumerate(plain.pairs):
    expected = plain.matches[p].copy()
    real = expected[:, 4] > 0
    for flag, column in ((planted[a], 0), (planted[b], 2)):
      if flag:
        expected[real, column] = size - 1 - expected[real, column]
    got = oriented.matches[p][oriented.matches[p][:, 4] > 0]
    key = lambda rows: sorted(map(tuple, np.round(rows, 3)))
    assert key(got) == key(expected[real]), (a, b)
