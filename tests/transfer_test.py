"""Transfer (nearest, soft, refine) against the released code's values, oracles and invariants,
and the released PCK pipeline through it."""

import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax.evaluation import metrics, transfer
from asic_jax.ops import sampling
from conftest import load_reference


def _centre_to_corner(points, res):
  """The released evaluation's pixel p (normalised (2p + 1)/res - 1) as our pixel."""
  return (2 * np.asarray(points, np.float32) + 1) * (res - 1) / (2 * res)


def test_oracle_transfer_scores_one():
  """Image b is image a shifted by (3, 2) pixels: its flow is a's, shifted; every integer
  keypoint transfers exactly, so PCK is 1 at every alpha."""
  size = 16
  identity = np.asarray(sampling.identity_grid(size, size))
  shifted = np.roll(identity, (2, 3), axis=(0, 1))  # pixel (x + 3, y + 2) holds (x, y)
  flows = jnp.asarray(np.stack([identity, shifted]))
  points = np.asarray([[[4, 5], [7, 1], [10, 9]]], np.float32)  # clear of the roll's wrap
  pred = transfer.transfer_pairs(flows, None, jnp.asarray([0]), jnp.asarray([1]),
                                 jnp.asarray(points))
  np.testing.assert_array_equal(pred, points + [3, 2])
  assert np.all(metrics.pck(pred, points + [3, 2], np.ones((1, 3), bool), [20.0]) == 1.0)


def test_transfer_equals_the_released_transfer_where_conventions_agree():
  """The reverse search (canonical point -> target pixel) is convention-free and equals the
  released `pred` exactly. The forward step reads the flow at the keypoint: the released
  evaluation normalises p as (2p + 1)/res - 1 (pixel centres), we as 2p/(res - 1) - 1
  (corner-aligned, as training). Fed the released keypoints converted to our frame, our
  transfer equals `canon` and `pred`; fed the same numbers as our pixels, `canon` differs
  (and `pred` may): those keys differ by the half-pixel convention, DESIGN §8.2."""
  ref = load_reference('transfer_points')
  flows = jnp.asarray(ref['flows'])
  masks = jnp.asarray(ref['masks'][:, 0])
  res = int(ref['res'])
  for suffix in ('', '_3'):
    src, trg = ref[f'src_idx{suffix}'], ref[f'trg_idx{suffix}']
    kps, canon = ref[f'src_kps{suffix}'], ref[f'canon{suffix}']
    for i, (s, t) in enumerate(zip(src, trg)):
      np.testing.assert_array_equal(
          transfer.nearest_pixels(flows[t], masks[t], jnp.asarray(canon[i])),
          ref[f'pred{suffix}'][i])
      ours = transfer.canonical_points(flows[s], jnp.asarray(_centre_to_corner(kps[i], res)))
      np.testing.assert_allclose(ours, canon[i], atol=1e-5)
      np.testing.assert_array_equal(
          transfer.transfer(flows[s], flows[t], masks[t],
                            jnp.asarray(_centre_to_corner(kps[i], res))), ref[f'pred{suffix}'][i])
      corner = transfer.canonical_points(flows[s], jnp.asarray(kps[i]))
      assert np.abs(corner - canon[i]).max() > 1e-3


def _released_transfer(ref):
  """Our transfer, fed keypoints in the released pixel-centre convention (as its pck_loop)."""
  flows = jnp.asarray(ref['flows'])
  masks = jnp.asarray(ref['masks'][:, 0])
  res = int(ref['res'])

  def fn(src, trg, points):
    return np.asarray(
        transfer.transfer_pairs(flows, masks, jnp.asarray(src), jnp.asarray(trg),
                                jnp.asarray(_centre_to_corner(points, res))))

  return fn


def test_pairs_and_k_cycle_pck_equal_the_released_pipeline_in_corrected_order():
  ref = load_reference('pck_pipeline')
  fn = _released_transfer(ref)
  kps, vis = ref['kps'][..., :2], ref['kps'][..., 2] > 0
  pairs = ref['fixed_pairs']
  pred = fn(pairs[:, 0], pairs[:, 1], kps[pairs[:, 0]])
  np.testing.assert_array_equal(pred, ref['pairs_pred'])
  np.testing.assert_allclose(metrics.pck(pred, kps[pairs[:,
                                                         1]], vis[pairs[:, 0]] & vis[pairs[:, 1]],
                                         ref['thresholds'][pairs[:, 1]]),
                             ref['pck_pairs'],
                             rtol=1e-6)

  tuples = ref['cycle_tuples'][:, :2]  # [a, b, a]: the 2-cycles a -> b -> a
  hops = metrics.chain(fn, tuples, kps[tuples[:, 0]])
  np.testing.assert_array_equal(hops.reshape(-1, 8, 2), ref['cycle_pred'])
  ours = metrics.k_cycle_pck(fn, tuples, kps, vis, ref['thresholds'])
  np.testing.assert_allclose(ours, ref['pck_cycle_chain_order_thr'], rtol=1e-6)
  # The released pairing (thresholds tuple-major, rows chain-step major) gives its value,
  # not ours: the test would catch thresholds paired with the wrong rows.
  released = metrics.pck(hops.reshape(-1, 8, 2), ref['cycle_gt'], ref['cycle_vis'],
                         ref['cycle_thresholds_as_evaluate'])
  np.testing.assert_allclose(released, ref['pck_cycle'], rtol=1e-6)
  assert np.abs(released - ours).max() > 0.02


def test_cycle_consistency_of_identity_flows_is_one():
  size = 8
  flows = jnp.asarray(np.broadcast_to(sampling.identity_grid(size, size), (3, size, size, 2)))
  fn = lambda s, t, p: np.asarray(
      transfer.transfer_pairs(flows, None, jnp.asarray(s), jnp.asarray(t), jnp.asarray(p)))
  tuples = metrics.sample_tuples(3, 3, 4)
  masks = np.ones((3, size, size))
  masks[:, :, 4:] = 0  # the right half is background: a 4 x 4 grid keeps its left 2 columns
  values, counted = metrics.cycle_consistency(fn, tuples, masks, size, points=16)
  np.testing.assert_array_equal(values, 1.0)
  assert counted == len(tuples) * 8


def test_an_empty_target_mask_searches_the_whole_target():
  flow = sampling.identity_grid(6, 6)
  canonical = flow[jnp.asarray([1, 4]), jnp.asarray([2, 5])]
  empty = jnp.zeros((6, 6))
  np.testing.assert_array_equal(transfer.nearest_pixels(flow, empty, canonical), [[2, 1], [5, 4]])
  half = empty.at[:, :3].set(1.0)  # only the left half allowed: (5, 4) moves to (2, 4)
  np.testing.assert_array_equal(transfer.nearest_pixels(flow, half, canonical), [[2, 1], [2, 4]])


@pytest.mark.parametrize('budget', [7 * 36, 1 << 24])
def test_the_chunked_search_equals_the_whole_one(budget):
  """Every pixel of a 6 x 6 image searched against a target 7 queries at a time (budget / 36
  pixels) or all at once: the answer of `nearest_pixels` for each."""
  rng = np.random.default_rng(5)
  flow = jnp.asarray(rng.uniform(-1, 1, (6, 6, 2)), jnp.float32)
  mask = jnp.asarray(rng.uniform(size=(6, 6)), jnp.float32)
  queries = jnp.asarray(rng.uniform(-1, 1, (36, 2)), jnp.float32)
  np.testing.assert_array_equal(transfer.nearest_pixels_chunked(flow, mask, queries, budget=budget),
                                transfer.nearest_pixels(flow, mask, queries))


def test_soft_transfer_is_a_window_soft_argmax():
  """Hand-computed on a 5 x 5 identity grid (one pixel = 0.5 canonical units): the query
  (0.1, 0) sits 0.2 px right of the centre pixel (2, 2). Within the 3 x 3 window around it,
  pixel (x, y) has squared canonical distance ((x - 2.2)^2 + (y - 2)^2) * 0.25 and weight
  exp(-that / (t * 0.25)) = exp(-((x - 2.2)^2 + (y - 2)^2) / t): a Gaussian in pixels."""
  flow = sampling.identity_grid(5, 5)
  query = jnp.asarray([[0.1, 0.0]])
  t = 0.5
  xs, ys = np.meshgrid([1, 2, 3], [1, 2, 3], indexing='xy')
  w = np.exp(-((xs - 2.2)**2 + (ys - 2)**2) / t)
  expected = [np.sum(w * xs) / w.sum(), np.sum(w * ys) / w.sum()]
  got = transfer.soft_pixels(flow, None, query, window=1, temperature=t)
  np.testing.assert_allclose(got[0], expected, atol=1e-5)
  # The window: with window 0 it is the hard argmin; a masked-out pixel never counts.
  np.testing.assert_allclose(transfer.soft_pixels(flow, None, query, window=0, temperature=t),
                             [[2.0, 2.0]])
  mask = jnp.ones((5, 5)).at[2, 3].set(0.0)  # pixel (3, 2): x = 3, y = 2
  w_masked = np.where((xs == 3) & (ys == 2), 0.0, w)
  expected = [np.sum(w_masked * xs) / w_masked.sum(), np.sum(w_masked * ys) / w_masked.sum()]
  np.testing.assert_allclose(transfer.soft_pixels(flow, mask, query, window=1, temperature=t)[0],
                             expected,
                             atol=1e-5)
  # 'nearest' through `transfer` is the paper's integer pixel; 'soft' its refinement.
  src = sampling.identity_grid(5, 5)
  point = jnp.asarray([[2.2, 2.0]])
  np.testing.assert_array_equal(transfer.transfer(src, flow, None, point), [[2, 2]])
  soft = transfer.transfer(src, flow, None, point, method='soft', window=1, temperature=t)
  np.testing.assert_allclose(soft, [[np.sum(w * xs) / w.sum(), 2.0]], atol=1e-5)


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_refine_weighs_descriptor_similarity_by_the_canonical_prior():
  centers = np.asarray([[0.0, 0.0], [4.0, 0.0], [8.0, 0.0], [20.0, 0.0]], np.float32)
  target = _unit(np.asarray([[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0.9, 0.1]], np.float32))
  source = _unit(np.asarray([[0, 1, 0], [0, 1, 0], [1, 0, 0]], np.float32))
  coarse = np.asarray([[5.0, 0.0], [30.0, 0.0], [7.0, 1.0]], np.float32)
  hard = np.asarray(
      transfer.refine_pixels(coarse, source, target, centers, None, sigma=4 / 3, temperature=0.0))
  # Hard (temperature 0), within 3 sigma = 4 px.
  # Point 0: cells 4 and 8 are within 4 px of x = 5; cell 8 is the most similar (cell 20
  # would be as good but is out of the window). Point 1: no cell within 4 px of x = 30: it
  # stays. Point 2: cells 4 and 8; the first is more similar.
  np.testing.assert_array_equal(hard, [[8, 0], [30, 0], [4, 0]])
  allowed = np.asarray([True, True, False, True])
  np.testing.assert_array_equal(
      np.asarray(
          transfer.refine_pixels(coarse,
                                 source,
                                 target,
                                 centers,
                                 allowed,
                                 sigma=4 / 3,
                                 temperature=0.0))[0], [4, 0])
  # Soft: cells within 3 sigma = 4 px, weighted by exp(cos / T - d^2 / (2 sigma^2)).
  soft = np.asarray(
      transfer.refine_pixels(coarse, source, target, centers, None, sigma=4 / 3, temperature=0.5))
  sims = source[0] @ target[1:3].T
  d2 = np.sum((centers[1:3] - coarse[0])**2, -1)
  logits = sims / 0.5 - d2 / (2 * (4 / 3)**2)
  weights = np.exp(logits) / np.exp(logits).sum()
  np.testing.assert_allclose(soft[0], weights @ centers[1:3], rtol=1e-5)


def test_descriptors_at_reads_the_grid_bilinearly():
  rng = np.random.default_rng(0)
  grid = rng.normal(size=(3, 4, 5)).astype(np.float32)
  centers = np.stack(np.meshgrid(4 * np.arange(4) + 1.5, 4 * np.arange(3) + 1.5, indexing='xy'),
                     -1).astype(np.float32)
  at = np.asarray(transfer.descriptors_at(grid, centers, np.asarray([[5.5, 1.5], [7.5, 9.5]])))
  np.testing.assert_allclose(at[0], _unit(grid[0, 1]), rtol=1e-5)
  np.testing.assert_allclose(at[1], _unit((grid[2, 1] + grid[2, 2]) / 2), rtol=1e-5)


def test_refine_with_exact_descriptors_corrects_a_coarse_transfer():
  """Descriptors that name each cell: a transfer through a shifted canonical map lands one
  pixel off; refined within 2 px (3 sigma), it lands on the source point's own cell."""
  size = 16
  flow = np.asarray(sampling.identity_grid(size, size))
  shifted = np.asarray(sampling.identity_grid(size, size)) + np.asarray([2.0 / (size - 1), 0.0])
  centers = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing='xy'),
                     -1).astype(np.float32)
  grid = np.eye(size * size, dtype=np.float32).reshape(size, size, -1)
  points = np.asarray([[3.0, 4.0], [10.0, 12.0]], np.float32)
  coarse = np.asarray(transfer.transfer(flow, shifted, None, points))
  np.testing.assert_array_equal(coarse, points - [1, 0])
  found = transfer.Descriptors(grid, grid, centers, 2 / 3, 0.0)
  refined = np.asarray(
      transfer.transfer(flow, shifted, None, points, method='refine', descriptors=found))
  np.testing.assert_array_equal(refined, points)
