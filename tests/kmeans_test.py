"""Tests of asic_jax.correspondences.kmeans against numpy recomputations and planted clusters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax.correspondences import kmeans as kmeans_lib


def _planted(rng: np.random.Generator, sizes, dim: int = 8, spread: float = 0.05):
  """Well-separated clusters: `[sum(sizes), dim]` points and their planted labels."""
  centres = 3.0 * rng.standard_normal((len(sizes), dim))
  labels = np.repeat(np.arange(len(sizes)), sizes)
  points = centres[labels] + spread * rng.standard_normal((len(labels), dim))
  return points.astype(np.float32), labels


def _is_relabelling(predicted: np.ndarray, planted: np.ndarray) -> bool:
  """True when a one-to-one map sends every planted label to the predicted one."""
  pairs = set(zip(planted.tolist(), predicted.tolist()))
  return len(pairs) == len(set(planted.tolist())) == len(set(predicted.tolist()))


def _numpy_sse(points, centroids, labels, weights=None):
  points = points.astype(np.float64)
  weights = np.ones(len(points)) if weights is None else weights
  return float(np.sum(weights * np.sum((points - centroids[labels])**2, axis=-1)))


def test_recovers_planted_partition_and_sse_matches_numpy():
  rng = np.random.default_rng(0)
  points, planted = _planted(rng, (30, 12, 45, 20))
  result = kmeans_lib.kmeans(jnp.asarray(points), 4, jax.random.key(1), num_iters=20)
  labels = np.asarray(result.labels)
  centroids = np.asarray(result.centroids, np.float64)
  assert _is_relabelling(labels, planted)
  # Converged: each centroid is the mean of its points, each label the nearest centroid.
  for j in range(4):
    np.testing.assert_allclose(centroids[j], points[labels == j].mean(axis=0), atol=1e-5)
  distances = ((points[:, None].astype(np.float64) - centroids[None])**2).sum(-1)
  np.testing.assert_array_equal(labels, distances.argmin(axis=1))
  np.testing.assert_allclose(float(result.sse), _numpy_sse(points, centroids, labels), rtol=1e-5)


def test_weights_zero_points_do_not_count():
  rng = np.random.default_rng(1)
  points, planted = _planted(rng, (25, 25, 25))
  weights = rng.uniform(0.5, 2.0, len(points)).astype(np.float32)
  # Far outliers with weight 0 would take a cluster of their own if they counted.
  outliers = (50.0 + rng.standard_normal((10, points.shape[1]))).astype(np.float32)
  all_points = np.concatenate([points, outliers])
  all_weights = np.concatenate([weights, np.zeros(10, np.float32)])
  result = kmeans_lib.kmeans(jnp.asarray(all_points),
                             3,
                             jax.random.key(2),
                             weights=jnp.asarray(all_weights),
                             num_iters=20)
  labels = np.asarray(result.labels)
  centroids = np.asarray(result.centroids, np.float64)
  assert _is_relabelling(labels[:75], planted)
  for j in range(3):
    members = labels[:75] == j
    expected = np.average(points[members], axis=0, weights=weights[members])
    np.testing.assert_allclose(centroids[j], expected, atol=1e-5)
  np.testing.assert_allclose(float(result.sse),
                             _numpy_sse(all_points, centroids, labels, all_weights),
                             rtol=1e-5)


def test_sse_non_increasing_in_k():
  rng = np.random.default_rng(2)
  points = rng.standard_normal((200, 2)).astype(np.float32)
  # elbow = inf never stops: the objective of every k = 1 ... 8, i.e. SSE / M on this sample.
  elbow = kmeans_lib.kmeans_elbow(jnp.asarray(points),
                                  jax.random.key(3),
                                  max_k=8,
                                  elbow=np.inf,
                                  num_iters=30)
  assert elbow.k == 8 and len(elbow.sse) == 8
  assert all(b <= a for a, b in zip(elbow.sse, elbow.sse[1:])), elbow.sse
  # k = 1 is the centred sum of squares.
  centred = points.astype(np.float64) - points.mean(axis=0)
  np.testing.assert_allclose(elbow.sse[0], np.mean(np.sum(centred**2, axis=-1)), rtol=1e-5)
  centroids = np.asarray(elbow.result.centroids, np.float64)
  labels = np.asarray(elbow.result.labels)
  np.testing.assert_allclose(elbow.sse[-1] * len(points),
                             _numpy_sse(points, centroids, labels),
                             rtol=1e-5)


def test_deterministic_for_a_key():
  rng = np.random.default_rng(3)
  points = jnp.asarray(rng.standard_normal((120, 5)).astype(np.float32))
  first = kmeans_lib.kmeans(points, 6, jax.random.key(7), num_iters=10)
  again = kmeans_lib.kmeans(points, 6, jax.random.key(7), num_iters=10)
  for x, y in zip(first, again):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_empty_clusters_reseed_to_distinct_farthest_points():
  points = jnp.asarray([[0.0], [1.0], [2.0], [10.0], [20.0]])
  weights = jnp.asarray([1.0, 1.0, 1.0, 1.0, 0.0])
  # Centroids 1 and 2 sit where nothing is nearest them: both clusters are empty.
  centroids = jnp.asarray([[1.0], [-100.0], [-200.0]])
  active = jnp.ones(3, bool)
  updated = np.asarray(kmeans_lib._update_centroids(points, weights, centroids, active))
  # Cluster 0 keeps the weighted mean of its points; the empty ones take the points farthest
  # from their centroid (10 at distance 81, then 2 and 0 at distance 1: 0 is first on ties),
  # never the weight-0 point at 20.
  np.testing.assert_allclose(updated[:, 0], [13.0 / 4.0, 10.0, 0.0])


def test_assign_matches_numpy_argmin():
  rng = np.random.default_rng(4)
  points = rng.standard_normal((50, 4)).astype(np.float32)
  centroids = rng.standard_normal((6, 4)).astype(np.float32)
  labels, d2 = kmeans_lib.assign(jnp.asarray(points), jnp.asarray(centroids))
  distances = ((points[:, None].astype(np.float64) - centroids[None])**2).sum(-1)
  np.testing.assert_array_equal(np.asarray(labels), distances.argmin(axis=1))
  np.testing.assert_allclose(np.asarray(d2), distances.min(axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('num_clusters', [2, 3, 5])
def test_elbow_picks_planted_number_of_clusters(num_clusters):
  rng = np.random.default_rng(10 + num_clusters)
  points, planted = _planted(rng, [40] * num_clusters, dim=16)
  found = {
      keep:
          kmeans_lib.kmeans_elbow(jnp.asarray(points[::2]),
                                  jax.random.key(0),
                                  scored=jnp.asarray(points),
                                  max_k=8,
                                  num_iters=20,
                                  keep=keep) for keep in ('previous', 'last')
  }
  elbow = found['previous']
  assert elbow.k == num_clusters
  # The search stopped at k + 1, whose objective exceeds 0.975 that of k ...
  assert len(elbow.sse) == num_clusters + 1
  assert elbow.sse[-1] > 0.975 * elbow.sse[-2]
  assert all(b <= 0.975 * a for a, b in zip(elbow.sse[:-1], elbow.sse[1:-1]))
  # ... and dino-vit-features' rule keeps that k + 1, splitting one planted cluster.
  last = found['last']
  assert last.k == num_clusters + 1 and len(last.sse) == num_clusters + 1
  labels, _ = kmeans_lib.assign(jnp.asarray(points), last.result.centroids)
  pairs = set(zip(np.asarray(labels).tolist(), planted.tolist()))
  assert len(pairs) == len(set(np.asarray(labels).tolist())) == num_clusters + 1  # each in one
  labels, _ = kmeans_lib.assign(jnp.asarray(points), elbow.result.centroids)
  assert _is_relabelling(np.asarray(labels), planted)
