"""Test-time congealing of the canonical map (asic_jax.congeal): its template and moves against
numpy, invariants, a planted misalignment it must undo, and the run's outputs reading it."""

import numpy as np
import pytest

import asic_jax
from asic_jax import api, congeal, restore
from asic_jax.evaluation import protocol, transfer

SETTINGS = congeal.Settings(steps=5, sigma=0.15, temperature=0.1, grid=32)


def test_template_is_a_normalised_bilinear_splat():
  """Two cells on a 3 x 3 grid: one at a grid point, one between four; by hand in numpy."""
  points = np.asarray([[-1.0, 0.0], [0.5, 0.5]], np.float32)  # grid points at -1, 0, 1
  descriptors = np.asarray([[1.0, 0.0], [0.0, 1.0]], np.float32)
  weights = np.asarray([1.0, 2.0], np.float32)
  expected = np.zeros((9, 2))
  expected[3] += [1.0, 0.0]  # (x -1, y 0): row 1, column 0
  for index in (4, 5, 7, 8):  # (0.5, 0.5) lies a quarter into each of (0|1, 0|1)
    expected[index] += 2.0 * 0.25 * np.asarray([0.0, 1.0])
  norms = np.linalg.norm(expected, axis=1, keepdims=True)
  expected = np.where(norms > 0, expected / np.maximum(norms, 1e-12), 0.0)
  got = np.asarray(congeal.template(points, descriptors, weights, 3))
  np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_cell_moves_to_the_softmax_weighted_mean_of_the_grid():
  rng = np.random.default_rng(0)
  side, sigma, temperature = 5, 0.2, 0.3
  found = rng.normal(size=(side * side, 4)).astype(np.float32)
  found /= np.linalg.norm(found, axis=1, keepdims=True)
  points = rng.uniform(-1, 1, size=(2, 3, 2)).astype(np.float32)
  descriptors = rng.normal(size=(2, 3, 4)).astype(np.float32)
  descriptors /= np.linalg.norm(descriptors, axis=-1, keepdims=True)
  g = np.linspace(-1, 1, side)
  grid = np.stack(np.meshgrid(g, g, indexing='xy'), -1).reshape(-1, 2)
  p, d = points.reshape(-1, 2), descriptors.reshape(-1, 4)
  logits = d @ found.T / temperature - ((p[:, None] - grid[None])**2).sum(-1) / (2 *
                                                                                  (2 * sigma)**2)
  weights = np.exp(logits - logits.max(1, keepdims=True))
  expected = (weights / weights.sum(1, keepdims=True)) @ grid
  got = congeal.move_cells(points, descriptors, found, side, sigma=sigma, temperature=temperature)
  np.testing.assert_allclose(np.asarray(got).reshape(-1, 2), expected, atol=1e-5)


def _identity_flows(n: int, size: int) -> np.ndarray:
  axis = np.linspace(-1, 1, size)
  return np.broadcast_to(np.stack(np.meshgrid(axis, axis, indexing='xy'), -1),
                         (n, size, size, 2)).astype(np.float32)


def _centers(size: int, stride: int) -> np.ndarray:
  axis = np.arange(stride / 2 - 0.5, size, stride)
  return np.stack(np.meshgrid(axis, axis, indexing='xy'), -1).astype(np.float32)


def test_descriptors_alike_everywhere_leave_the_map_where_it_was():
  """Nothing to match: the moves are the prior's mean, the trained map's own points (inside
  the square, away from the border the prior is cut at); zero steps changes nothing."""
  size, n = 32, 3
  flows = _identity_flows(n, size)
  centers = _centers(size, 4)
  descriptors = np.ones((n, 8, 8, 16), np.float32)
  masks = np.ones((n, size, size), np.float32)
  got, found = congeal.congeal(flows, descriptors, centers, masks,
                               SETTINGS._replace(sigma=0.05))
  inner = np.abs(flows).max(-1) < 0.6
  assert np.abs(np.asarray(got) - flows)[inner].max() < 1e-4 and found.shape == (32 * 32, 16)
  same, none = congeal.congeal(flows, descriptors, centers, masks, SETTINGS._replace(steps=0))
  np.testing.assert_array_equal(np.asarray(same), flows)
  assert none is None


def test_congealing_undoes_a_planted_misalignment():
  """Six photos of one random pattern, each shifted by up to 6 px, all mapped by the identity
  (so a point of the pattern lands at six canonical points). Congealed, the nearest transfer
  between them carries each pattern point to its own shifted place: the error falls from the
  shifts' (7.8 px on average) to under 1.5 px (0.77 measured)."""
  rng = np.random.default_rng(1)
  size, stride, n, channels = 64, 4, 6, 64
  frequencies = rng.normal(scale=0.15, size=(channels, 2))
  phases = rng.uniform(0, 2 * np.pi, channels)
  shifts = rng.uniform(-6, 6, size=(n, 2))
  centers = _centers(size, stride)
  # Photo i shows the pattern moved by shifts[i]: its descriptor at x is the pattern's at x - t.
  descriptors = np.stack([
      np.cos((centers - t) @ frequencies.T + phases) for t in shifts]).astype(np.float32)
  flows = _identity_flows(n, size)
  masks = np.ones((n, size, size), np.float32)
  got, _ = congeal.congeal(flows, descriptors, centers, masks, SETTINGS)
  points = rng.uniform(20, 44, size=(12, 2)).astype(np.float32)  # pattern points, photo 0
  src = np.zeros(n - 1, np.int32)
  trg = np.arange(1, n, dtype=np.int32)
  start = np.broadcast_to(points + shifts[0], (n - 1, 12, 2)).astype(np.float32)
  truth = points[None] + shifts[1:, None]

  def error(f):
    moved = np.asarray(transfer.transfer_pairs(f, None, src, trg, start))
    return np.linalg.norm(moved - truth, axis=-1).mean()

  before, after = error(flows), error(got)
  assert before > 4 and after < 1.5, (before, after)


@pytest.fixture(scope='module')
def congealed(tiny_run, tmp_path_factory):
  """The tiny run restored with congealing on (the bundled VGG-16's descriptors)."""
  cli = asic_jax.config_lib.base_config()
  cli.eval.congeal_steps = 5
  cli.features.cache_dir = str(tmp_path_factory.mktemp('cache'))
  config, collection, state, step = restore.restore_run(cli, tiny_run)
  config.features.backbone = 'vgg16'
  flows, found = congeal.collection_flows(config, state, collection)
  return api.Alignment(config, collection, state, step, flows, template=found)


def test_the_api_and_eval_read_the_congealed_maps(congealed, tiny_run):
  """Every output reads the congealed flows: the API's transfer is the protocol's through
  them, and they differ from the network's own."""
  plain = asic_jax.load(tiny_run)
  collection, config = congealed.collection, congealed.config
  assert np.abs(np.asarray(congealed._flows) - np.asarray(plain._flows)).max() > 1e-3
  pairs = collection.eval_pairs
  fn = protocol.config_transfer(config, congealed._flows, collection, collection.masks)
  expected = fn(pairs.src, pairs.trg, pairs.src_points)
  for e in range(len(pairs)):
    got = congealed.transfer(pairs.src_points[e], int(pairs.src[e]), int(pairs.trg[e]))
    np.testing.assert_array_equal(got, expected[e])
  coords, _ = congealed.canonical(2)
  np.testing.assert_allclose(coords, np.asarray(congealed._flows[2]), atol=1e-6)


def test_a_collection_photo_mapped_as_new_takes_its_congealed_map(congealed):
  """A new photo makes one move against the collection's template, as the collection's own
  photos made their last: a collection photo passed in again gets its congealed map back,
  and the collection's maps do not change."""
  photo = np.rint((congealed.collection.images[3] + 1) * 127.5).astype(np.uint8)
  mapped = congealed.map([photo], masks=[congealed.collection.masks[3]], names=['again'])
  again, _ = mapped.canonical('again')
  own, _ = congealed.canonical(3)
  assert np.abs(again - own).max() < 1e-3  # 6e-4 measured: the photo went through uint8
  np.testing.assert_array_equal(np.asarray(mapped._flows[:len(congealed)]),
                                np.asarray(congealed._flows))
