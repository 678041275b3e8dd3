"""The pair list: every pair, or a k-nearest-neighbour graph for collections of hundreds.

All pairs cost N (N - 1) / 2 mutual-nearest-neighbour searches, which is fine for the
paper's 10-30 images and not for 300 (44,850 pairs). With `pairs.max_per_image = k`, each
image picks k partners: its `k - r` most similar images by a global descriptor (the CLS
token's facet, cosine similarity) and `r = pairs.random_per_image` random others (so the
graph stays connected across clusters of look-alike images). Pairs are unordered and
deduplicated, so there are at most N k of them and every image is in at least k.
"""

import numpy as np

from asic_jax.data import collection as collection_lib


def knn_pairs(descriptors: np.ndarray,
              k: int,
              *,
              random_per_image: int = 1,
              seed: int = 0) -> np.ndarray:
  """`[P, 2]` int32 unordered pairs (a < b), P <= N k, each image in >= min(k, N - 1).

  Args:
    descriptors: `[N, D]` global descriptors (cosine similarity; normalised here).
    k: partners each image picks.
    random_per_image: how many of the k are random rather than nearest.
    seed: for the random partners.
  """
  n = len(descriptors)
  if k < 1:
    raise ValueError(f'pairs.max_per_image must be >= 1, got {k}')
  if k >= n - 1:
    return collection_lib.all_pairs(n)
  random_per_image = min(max(random_per_image, 0), k)
  unit = descriptors / np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
  similarity = unit @ unit.T
  np.fill_diagonal(similarity, -np.inf)
  rng = np.random.default_rng(seed)
  chosen = set()
  for i in range(n):
    order = [int(j) for j in np.argsort(-similarity[i], kind='stable') if j != i]
    near = order[:k - random_per_image]
    others = np.asarray(order[k - random_per_image:])
    extra = rng.choice(others, size=random_per_image, replace=False) if random_per_image else []
    chosen.update((min(i, j), max(i, j)) for j in (*near, *(int(e) for e in extra)))
  return np.asarray(sorted(chosen), np.int32).reshape(-1, 2)
