"""The k-nearest-neighbour pair graph for large collections."""

import numpy as np
import pytest

from asic_jax.data import pairs


@pytest.mark.parametrize('n,k,r', [(30, 4, 1), (50, 6, 2), (12, 3, 0), (7, 6, 1)])
def test_pair_count_is_at_most_nk_and_every_image_has_k(n, k, r):
  rng = np.random.default_rng(n)
  found = pairs.knn_pairs(rng.normal(size=(n, 16)), k, random_per_image=r, seed=0)
  assert len(found) <= n * k
  assert np.all(found[:, 0] < found[:, 1])  # unordered, no self-pairs
  assert len({tuple(p) for p in found}) == len(found)  # no duplicates
  degree = np.bincount(found.ravel(), minlength=n)
  assert degree.min() >= min(k, n - 1)


def test_nearest_partners_come_from_the_global_descriptor():
  """Two tight clusters: without random partners, every pair stays inside a cluster."""
  rng = np.random.default_rng(0)
  centres = np.asarray([[1.0, 0, 0], [0, 1.0, 0]])
  labels = np.repeat([0, 1], 10)
  descriptors = centres[labels] + 0.01 * rng.normal(size=(20, 3))
  found = pairs.knn_pairs(descriptors, 3, random_per_image=0)
  assert np.all(labels[found[:, 0]] == labels[found[:, 1]])
  # One random partner per image joins the clusters.
  mixed = pairs.knn_pairs(descriptors, 3, random_per_image=1, seed=1)
  assert np.any(labels[mixed[:, 0]] != labels[mixed[:, 1]])


def test_k_at_least_n_minus_one_is_all_pairs():
  assert len(pairs.knn_pairs(np.eye(5), 4)) == 10
  with pytest.raises(ValueError, match='max_per_image'):
    pairs.knn_pairs(np.eye(5), 0)


def test_identical_images_are_never_paired():
  rng = np.random.default_rng(0)
  images = rng.random((6, 8, 8, 3)).astype(np.float32)
  images[4] = images[1]  # the same file twice (PF-WILLOW's car(M) and car(S) share 10)
  names = tuple('abcdef')
  with pytest.warns(UserWarning, match='1 pairs of identical images are not paired: b = e'):
    every = pairs.training_pairs(images, names=names)
  assert len(every) == 15 - 1 and [1, 4] not in every.tolist()
  with pytest.warns(UserWarning):
    graph = pairs.training_pairs(images,
                                 2,
                                 global_descriptors=images.reshape(6, -1),
                                 random_per_image=1,
                                 names=names)
  assert [1, 4] not in graph.tolist()  # though each is the other's nearest neighbour
  assert np.bincount(graph.ravel(), minlength=6).min() >= 2
