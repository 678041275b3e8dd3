"""The pair list (the one module that owns it): every pair, or a k-nearest-neighbour graph
for collections of hundreds.

All pairs cost N (N - 1) / 2 mutual-nearest-neighbour searches, which is fine for the
paper's 10-30 images and not for 300 (44,850 pairs). With `pairs.max_per_image = k`, each
image picks k partners: its `k - r` most similar images by a global descriptor (the CLS
token's facet, cosine similarity) and `r = pairs.random_per_image` random others (so the
graph stays connected across clusters of look-alike images). Pairs are unordered and
deduplicated, so there are at most N k of them and every image is in at least k.

Two byte-identical images are never paired (PF-WILLOW holds 30 files twice, in two of its
sub-folders): their mutual nearest neighbours would match every patch to itself, which
teaches nothing, and that one pair's match count would set the padded size of every pair.
"""

import hashlib
import warnings

import numpy as np


def all_pairs(n: int) -> np.ndarray:
  """`[n (n - 1) / 2, 2]` int32: every unordered pair (a, b), a < b, row-major."""
  a, b = np.triu_indices(n, k=1)
  return np.stack([a, b], axis=1).astype(np.int32)


def identical_images(images: np.ndarray) -> np.ndarray:
  """`[N, N]` bool: True where two different images hold the same bytes."""
  digests = [hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest() for x in images]
  same = np.asarray([[a == b for b in digests] for a in digests])
  np.fill_diagonal(same, False)
  return same


def training_pairs(images: np.ndarray,
                   max_per_image: int = 0,
                   *,
                   global_descriptors: np.ndarray | None = None,
                   random_per_image: int = 1,
                   seed: int = 0,
                   names: tuple[str, ...] | None = None) -> np.ndarray:
  """The pair list of a collection: every pair (`max_per_image` 0) or the k-NN graph of
  `global_descriptors`, never two identical images (a warning names them)."""
  same = identical_images(images)
  if same.any():
    a, b = np.nonzero(np.triu(same))
    shown = [f'{names[i]} = {names[j]}' if names else f'{i} = {j}' for i, j in zip(a, b)]
    warnings.warn(f'{len(a)} pairs of identical images are not paired: {", ".join(shown[:5])}'
                  f'{" ..." if len(shown) > 5 else ""}')
  if max_per_image:
    return knn_pairs(global_descriptors,
                     max_per_image,
                     random_per_image=random_per_image,
                     seed=seed,
                     exclude=same)
  pairs = all_pairs(len(images))
  return pairs[~same[pairs[:, 0], pairs[:, 1]]]


def knn_pairs(descriptors: np.ndarray,
              k: int,
              *,
              random_per_image: int = 1,
              seed: int = 0,
              exclude: np.ndarray | None = None) -> np.ndarray:
  """`[P, 2]` int32 unordered pairs (a < b), P <= N k, each image in >= min(k, N - 1 - e)
  (e: the partners `exclude` forbids it).

  Args:
    descriptors: `[N, D]` global descriptors (cosine similarity; normalised here).
    k: partners each image picks.
    random_per_image: how many of the k are random rather than nearest.
    seed: for the random partners.
    exclude: `[N, N]` bool, pairs never chosen (None: none).
  """
  n = len(descriptors)
  if k < 1:
    raise ValueError(f'pairs.max_per_image must be >= 1, got {k}')
  exclude = np.zeros((n, n), bool) if exclude is None else np.asarray(exclude, bool)
  if k >= n - 1:
    pairs = all_pairs(n)
    return pairs[~exclude[pairs[:, 0], pairs[:, 1]]]
  random_per_image = min(max(random_per_image, 0), k)
  unit = descriptors / np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
  similarity = unit @ unit.T
  np.fill_diagonal(similarity, -np.inf)
  rng = np.random.default_rng(seed)
  chosen = set()
  for i in range(n):
    order = [
        int(j) for j in np.argsort(-similarity[i], kind='stable') if j != i and not exclude[i, j]
    ]
    near = order[:k - random_per_image]
    others = np.asarray(order[k - random_per_image:])
    extra = rng.choice(others, size=min(random_per_image, len(others)),
                       replace=False) if random_per_image else []
    chosen.update((min(i, j), max(i, j)) for j in (*near, *(int(e) for e in extra)))
  return np.asarray(sorted(chosen), np.int32).reshape(-1, 2)
