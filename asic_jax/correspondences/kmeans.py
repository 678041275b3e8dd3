"""k-means in JAX: k-means++ seeding, a fixed number of Lloyd iterations, restarts.

dino-vit-features (the co-segmentation and part code the released ASIC carries) clusters with
faiss (`faiss.Kmeans(niter=300, nredo=10)`: random seeding, best of 10 runs). faiss is not a
dependency here, so this module is our replacement: k-means++ seeding (Arthur & Vassilvitskii,
2007), `num_iters` Lloyd iterations (static, so one compiled program per `k`), the best of
`num_init` seedings by SSE, deterministic for a given `jax.random` key. Points may carry
non-negative weights, which lets a variable subset (the foreground patches) be clustered with
static shapes: weight 0 removes a point.

Empty clusters (no weight assigned) are re-seeded deterministically to the points farthest from
their own centroid: the r-th empty cluster (in index order) takes the r-th farthest point with
positive weight, so two empty clusters never take the same point.

Squared distances and centroid sums use `Precision.HIGHEST`: GPUs would otherwise multiply
float32 in TF32, which is too coarse to compare SSEs across `k` in the elbow rule. Sums per
cluster use a one-hot matrix product rather than a scatter-add, whose float order (and so its
result) can change from run to run on GPUs.
"""

import functools
from typing import NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

_HIGHEST = lax.Precision.HIGHEST
# Which k the elbow search keeps (`features.elbow_keep`).
ELBOW_KEEPS = ('last', 'previous')


class KMeans(NamedTuple):
  """What `kmeans` returns.

  Attributes:
    centroids: `[k, C]` float32.
    labels: `[M]` int32, the nearest centroid of every point (lowest index on ties), weight-0
      points included.
    sse: `[]` float32, the inertia: sum over points of weight x squared distance to the
      centroid of its label.
  """
  centroids: jax.Array
  labels: jax.Array
  sse: jax.Array


class Elbow(NamedTuple):
  """What `kmeans_elbow` returns.

  Attributes:
    k: the number of clusters kept.
    result: the `KMeans` for `k`, fitted on the sample.
    sse: `[tried]` float64, the mean squared distance of the scored points to their nearest
      centroid for k = 1, 2, ... up to the k that stopped the search.
  """
  k: int
  result: KMeans
  sse: np.ndarray


def squared_distances(points: jax.Array, centroids: jax.Array) -> jax.Array:
  """`[M, C]`, `[k, C]` -> `[M, k]` squared Euclidean distances (clipped at 0), float32 inputs."""
  cross = jnp.matmul(points, centroids.T, precision=_HIGHEST)
  d2 = (jnp.sum(points * points, axis=-1, keepdims=True) - 2.0 * cross +
        jnp.sum(centroids * centroids, axis=-1))
  return jnp.maximum(d2, 0.0)


def _nearest(points: jax.Array, centroids: jax.Array,
             active: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`assign` among the centroids where `active` `[k]` holds."""
  d2 = jnp.where(active, squared_distances(points, centroids), jnp.inf)
  labels = jnp.argmin(d2, axis=-1).astype(jnp.int32)
  return labels, jnp.take_along_axis(d2, labels[:, None], axis=-1)[:, 0]


@jax.jit
def assign(points: jax.Array, centroids: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Nearest centroid of every point.

  Args:
    points: `[M, C]`.
    centroids: `[k, C]`.

  Returns:
    `(labels, d2)`: `[M]` int32 index of the nearest centroid (lowest on ties, as numpy's
    argmin) and `[M]` float32 squared distance to it.
  """
  active = jnp.ones(centroids.shape[:1], bool)
  return _nearest(points.astype(jnp.float32), centroids.astype(jnp.float32), active)


def _seed(points: jax.Array, weights: jax.Array, k: jax.Array, capacity: int,
          key: jax.Array) -> jax.Array:
  """k-means++: `[capacity, C]`, the first `k` rows drawn with probability ~ weight x D^2.

  The first is drawn with probability ~ weight. Once every remaining point coincides with a
  centroid (D^2 = 0 everywhere), draws fall back to probability ~ weight. Rows from `k` on
  stay 0.
  """

  def distances_to(centroid):
    return jnp.sum(jnp.square(points - centroid), axis=-1)

  first = points[jax.random.categorical(jax.random.fold_in(key, 0), jnp.log(weights))]
  centroids = jnp.zeros((capacity, points.shape[1]), points.dtype).at[0].set(first)

  def draw(j, carry):
    centroids, d2 = carry
    mass = weights * d2
    mass = jnp.where(jnp.sum(mass) > 0, mass, weights)
    centroid = points[jax.random.categorical(jax.random.fold_in(key, j), jnp.log(mass))]
    return centroids.at[j].set(centroid), jnp.minimum(d2, distances_to(centroid))

  centroids, _ = lax.fori_loop(1, k, draw, (centroids, distances_to(first)))
  return centroids


def _update_centroids(points: jax.Array, weights: jax.Array, centroids: jax.Array,
                      active: jax.Array) -> jax.Array:
  """One Lloyd iteration: `[k, C]` weighted means of the points nearest each active centroid.

  An active cluster with no weight is re-seeded to a far point (see the module docstring);
  inactive rows are returned unchanged.
  """
  capacity = centroids.shape[0]
  labels, d2 = _nearest(points, centroids, active)
  members = jax.nn.one_hot(labels, capacity, dtype=points.dtype) * weights[:, None]  # [M, k]
  mass = jnp.sum(members, axis=0)
  sums = jnp.matmul(members.T, points, precision=_HIGHEST)
  means = sums / jnp.where(mass > 0, mass, 1.0)[:, None]
  empty = (mass <= 0) & active
  _, farthest = lax.top_k(jnp.where(weights > 0, d2, -1.0), capacity)
  rank = jnp.maximum(jnp.cumsum(empty) - 1, 0)
  updated = jnp.where(empty[:, None], points[farthest[rank]], means)
  return jnp.where(active[:, None], updated, centroids)


def _single_run(points: jax.Array, weights: jax.Array, key: jax.Array, k: jax.Array, capacity: int,
                num_iters: int) -> KMeans:
  active = jnp.arange(capacity) < k
  centroids = _seed(points, weights, k, capacity, key)
  centroids = lax.fori_loop(0, num_iters,
                            lambda _, c: _update_centroids(points, weights, c, active), centroids)
  labels, _ = _nearest(points, centroids, active)
  # The SSE from explicit differences: the expanded form in `_nearest` loses digits.
  sse = jnp.sum(weights * jnp.sum(jnp.square(points - centroids[labels]), axis=-1))
  return KMeans(centroids, labels, sse)


def _fit(points: jax.Array, weights: jax.Array | None, key: jax.Array, k: jax.Array, *,
         capacity: int, num_iters: int, num_init: int) -> KMeans:
  """`kmeans` with `k` traced: centroids `[capacity, C]`, rows from `k` on unused (0).

  One compiled program then serves every k up to `capacity` (the elbow search).
  """
  points = points.astype(jnp.float32)
  weights = (jnp.ones(points.shape[:1], jnp.float32)
             if weights is None else weights.astype(jnp.float32))
  keys = jax.random.split(key, num_init)
  runs = jax.vmap(lambda run_key: _single_run(points, weights, run_key, k, capacity, num_iters))(
      keys)
  best = jnp.argmin(runs.sse)
  return jax.tree.map(lambda x: x[best], runs)


def _check(points: jax.Array, k: int, num_iters: int, num_init: int) -> None:
  if points.ndim != 2:
    raise ValueError(f'points must be [M, C], got shape {points.shape}')
  if not 1 <= k <= points.shape[0]:
    raise ValueError(f'k must be in [1, {points.shape[0]}] (the number of points), got {k}')
  if num_init < 1 or num_iters < 0:
    raise ValueError(f'num_init must be >= 1 and num_iters >= 0, got {num_init}, {num_iters}')


@functools.partial(jax.jit, static_argnames=('k', 'num_iters', 'num_init'))
def kmeans(points: jax.Array,
           k: int,
           key: jax.Array,
           *,
           weights: jax.Array | None = None,
           num_iters: int = 100,
           num_init: int = 5) -> KMeans:
  """Weighted k-means: k-means++ seeding, `num_iters` Lloyd iterations, best of `num_init`.

  Args:
    points: `[M, C]`, M >= k; computed in float32.
    k: the number of clusters (static).
    key: a `jax.random` key; the result is a deterministic function of it.
    weights: `[M]` non-negative point weights (None: all 1); at least `k` should be positive.
    num_iters: Lloyd iterations per run (static; no early stop).
    num_init: independent seedings; the run with the lowest SSE is returned (first on ties).

  Returns:
    `KMeans`: centroids `[k, C]`, labels `[M]`, sse `[]`.
  """
  _check(points, k, num_iters, num_init)
  return _fit(points, weights, key, k, capacity=k, num_iters=num_iters, num_init=num_init)


@functools.partial(jax.jit, static_argnames=('capacity', 'num_iters', 'num_init'))
def _fit_and_score(sample: jax.Array, scored: jax.Array, key: jax.Array, k: jax.Array, *,
                   capacity: int, num_iters: int, num_init: int) -> tuple[KMeans, jax.Array]:
  """`_fit` on `sample`, and the mean squared distance of `scored` to its nearest centroid."""
  result = _fit(sample, None, key, k, capacity=capacity, num_iters=num_iters, num_init=num_init)
  _, d2 = _nearest(scored.astype(jnp.float32), result.centroids, jnp.arange(capacity) < k)
  return result, jnp.mean(d2)


def kmeans_elbow(sample: jax.Array,
                 key: jax.Array,
                 *,
                 scored: jax.Array | None = None,
                 max_k: int = 14,
                 elbow: float = 0.975,
                 num_iters: int = 100,
                 num_init: int = 5,
                 keep: str = 'last') -> Elbow:
  """k-means for k = 1, 2, ... with the number of clusters chosen by the elbow rule.

  The objective of each k is the mean squared distance of `scored` to the nearest centroid
  fitted on `sample`, as dino-vit-features scores all descriptors after fitting a subsample.
  The search stops at the first k whose objective exceeds `elbow` times that of k - 1.
  `keep='last'` keeps that k, as dino-vit-features (and so the released ASIC code) does: one
  cluster more than the planted number of well-separated clusters, which co-segmentation's
  saliency vote absorbs, and never k = 1 (a single cluster makes every mask all or nothing).
  `keep='previous'` keeps k - 1, the textbook elbow: the last k that still paid off. Without
  a stop, `max_k` is kept. One program is compiled for all k.

  Args:
    sample: `[M, C]` points the centroids are fitted on.
    key: a `jax.random` key; k uses `fold_in(key, k)`.
    scored: `[M', C]` points the objective is measured on (None: `sample`).
    max_k: the largest k tried (at most M).
    elbow: the ratio of successive objectives that stops the search.
    num_iters: Lloyd iterations per run.
    num_init: seedings per k.
    keep: 'last' (the k that stopped the search) or 'previous' (k - 1).

  Returns:
    `Elbow`: the kept k, its `KMeans` on `sample`, and the objectives computed.
  """
  if keep not in ELBOW_KEEPS:
    raise ValueError(f'keep must be one of {ELBOW_KEEPS}, got {keep!r}')
  max_k = min(max_k, sample.shape[0])
  _check(sample, max_k, num_iters, num_init)
  scored = sample if scored is None else scored
  curve = []
  kept = None
  for k in range(1, max_k + 1):
    result, objective = _fit_and_score(sample,
                                       scored,
                                       jax.random.fold_in(key, k),
                                       k,
                                       capacity=max_k,
                                       num_iters=num_iters,
                                       num_init=num_init)
    curve.append(float(objective))
    stop = k > 1 and curve[-1] > elbow * curve[-2]
    if stop and keep == 'previous':
      break
    kept = KMeans(result.centroids[:k], result.labels, result.sse)
    if stop:
      break
  return Elbow(len(kept.centroids), kept, np.asarray(curve))
