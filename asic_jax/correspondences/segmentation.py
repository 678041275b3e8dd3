"""Foreground masks by co-segmentation and part maps, from DINO descriptors (DESIGN §1 step 2).

Co-segmentation follows dino-vit-features' recipe (`coseg_from_feat`, carried by the released
code): cluster the L2-normalised descriptors of all images together, k chosen by the elbow
rule; a cluster is foreground when its mean saliency exceeds a threshold in enough images.
Parts follow its `parts_from_feat`: k-means of the foreground descriptors into `num_parts`,
then every pixel takes its nearest part centroid. Deliberate differences from it:

* k-means is ours (`kmeans.py`, k-means++ and a few seedings) instead of faiss.
* The elbow keeps the first k that gains less than 1 - `elbow` over k - 1, as
  dino-vit-features does (`elbow_keep='last'`, the default); `'previous'` keeps k - 1, the
  textbook elbow (see `kmeans.kmeans_elbow`).
* Votes: a cluster is foreground when salient in 75 % of the images, as dino-vit-features'
  `coseg_from_feat` and the released code's co-segmentation call ask. (The released 20 %
  belongs to its *parts* stage, voting with binary masks, not saliency: at 20 % a background
  cluster salient in 5 of 25 images would become foreground in all of them.) It is an
  argument (`features.votes_percentage`).
* No GrabCut refinement of the masks (paper §3.3, dino-vit-features) and no dense CRF on the
  parts (no compiled extension): patch-level results are upsampled bilinearly instead, so
  masks are soft.
* Parts: a pixel is background where the soft mask is < 0.5; the released code instead lets
  background compete in the CRF through its distance to the nearest background centroid.
* Parts are clustered on `sample_interval`-subsampled patches weighted by foreground (static
  shapes); the released code subsamples the list of foreground descriptors.

Upsampling (masks and part distances alike): a pixel's value is interpolated bilinearly between
the patch centres around it, i.e. the patch grid is sampled at the pixel's position relative to
the centres (`asic_jax.ops.sampling.grid_sample`, border padding, so pixels outside the span of
centres take the nearest patch). A corner-aligned resize of the `h x w` grid to `S x S` would
put the first and last patches at pixels 0 and S - 1 instead of at their centres (4 and S - 4
at 256 px, stride 2), stretching every mask by up to half a patch.

Frames: descriptors `[N, h, w, C]`, saliency `[N, h, w]`, patch centres `[h, w, 2]` (x, y)
pixels of the S x S image frame on a regular grid (`asic_jax.models.dino.patch_centers`).
"""

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from asic_jax.correspondences import kmeans as kmeans_lib
from asic_jax.correspondences import matching
from asic_jax.ops import sampling


class CoSegmentation(NamedTuple):
  """What `cosegment` returns.

  Attributes:
    masks: `[N, S, S]` float32 soft foreground in [0, 1].
    foreground: `[N, h, w]` bool, the foreground patches.
    num_clusters: k chosen by the elbow rule.
    salient: `[num_clusters]` bool, the clusters voted foreground.
    sse: the elbow curve: mean squared distance of all descriptors to their nearest centroid,
      for k = 1, 2, ... up to the k that stopped the search.
  """
  masks: jax.Array
  foreground: jax.Array
  num_clusters: int
  salient: np.ndarray
  sse: np.ndarray


@functools.partial(jax.jit, static_argnames=('size',))
def upsample_patches(values: jax.Array, centers: jax.Array, size: int) -> jax.Array:
  """Patch-grid values at every pixel: bilinear between patch centres, nearest patch outside.

  Args:
    values: `[N, h, w, K]` per-patch values, h, w >= 2.
    centers: `[h, w, 2]` (x, y) pixel centres of the patches, a regular grid.
    size: S, the side of the square image.

  Returns:
    `[N, S, S, K]` float32.
  """
  if values.ndim != 4 or values.shape[1] < 2 or values.shape[2] < 2:
    raise ValueError(f'values must be [N, h, w, K] with h, w >= 2, got shape {values.shape}')
  first, last = centers[0, 0], centers[-1, -1]
  pixels = jnp.arange(size, dtype=jnp.float32)
  # Pixel positions in the corner-aligned frame of the patch grid (-1, 1 at the end centres).
  xs = 2.0 * (pixels - first[0]) / (last[0] - first[0]) - 1.0
  ys = 2.0 * (pixels - first[1]) / (last[1] - first[1]) - 1.0
  coords = jnp.stack(jnp.meshgrid(xs, ys, indexing='xy'), axis=-1)
  return jax.vmap(lambda v: sampling.grid_sample(v, coords, padding='border'))(values.astype(
      jnp.float32))


def dense_enough(count: Callable[[int], int], interval: int, needed: int) -> int:
  """The sampling interval, halved until `count(interval)` samples reach `needed`.

  dino-vit-features samples every 100th patch, plenty for 30 images at 256 px; small
  collections at low resolution would be left with a handful, so they sample denser.
  """
  while interval > 1 and count(interval) < needed:
    interval = max(1, interval // 2)
  return interval


def _subsample(unit: jax.Array, interval: int) -> jax.Array:
  """Every `interval`-th patch of every image (row-major), as dino-vit-features samples."""
  return unit[:, ::interval].reshape(-1, unit.shape[-1])


@functools.partial(jax.jit, static_argnames=('num_clusters',))
def _cluster_saliency(labels: jax.Array, saliency: jax.Array,
                      num_clusters: int) -> tuple[jax.Array, jax.Array]:
  """Per image and cluster: `[N, k]` mean saliency over its patches, `[N, k]` any patch."""
  members = jax.nn.one_hot(labels, num_clusters, dtype=jnp.float32)  # [N, T, k]
  counts = members.sum(axis=1)
  sums = jnp.einsum('ntk,nt->nk', members, saliency.astype(jnp.float32))
  return sums / jnp.maximum(counts, 1.0), counts > 0


def cosegment(descriptors: jax.Array,
              saliency: jax.Array,
              centers: jax.Array,
              size: int,
              *,
              seed: int = 0,
              max_clusters: int = 14,
              elbow: float = 0.975,
              elbow_keep: str = 'last',
              threshold: float = 0.065,
              votes_percentage: float = 75.0,
              sample_interval: int = 100,
              num_iters: int = 100,
              num_init: int = 5) -> CoSegmentation:
  """Foreground masks of a collection by co-segmentation of its DINO descriptors.

  Args:
    descriptors: `[N, h, w, C]`, block-11 key descriptors (L2-normalised here).
    saliency: `[N, h, w]` in [0, 1], the CLS-attention saliency (`dino.extract`).
    centers: `[h, w, 2]` (x, y) pixel centres of the patches.
    size: S, the side of the square images.
    seed: seeds every random choice (k-means seedings).
    max_clusters: the largest k the elbow search tries.
    elbow: the ratio of successive k-means objectives that stops the search.
    elbow_keep: 'last' keeps the k that stopped the search (dino-vit-features), 'previous'
      the k before it.
    threshold: a cluster's mean saliency in an image must exceed this for that image's vote.
    votes_percentage: a cluster is foreground with votes from at least
      ceil(N x votes_percentage / 100) images (an image without the cluster does not vote).
    sample_interval: k-means is fitted on every `sample_interval`-th patch of every image, then
      every patch is assigned to its nearest centroid.
    num_iters: Lloyd iterations per k-means run.
    num_init: k-means seedings per k.

  Returns:
    `CoSegmentation`: masks `[N, S, S]`, patch foreground `[N, h, w]`, and the clustering.
  """
  num_images, height, width, channels = descriptors.shape
  if jnp.shape(saliency) != (num_images, height, width):
    raise ValueError(f'saliency must be [{num_images}, {height}, {width}], '
                     f'got {jnp.shape(saliency)}')
  if sample_interval < 1:
    raise ValueError(f'sample_interval must be >= 1, got {sample_interval}')
  unit = matching.l2_normalize(descriptors).reshape(num_images, height * width, channels)
  everything = unit.reshape(-1, channels)
  sample_interval = dense_enough(lambda i: num_images * len(range(0, height * width, i)),
                                 sample_interval, 10 * max_clusters)
  found = kmeans_lib.kmeans_elbow(_subsample(unit, sample_interval),
                                  jax.random.key(seed),
                                  scored=everything,
                                  max_k=max_clusters,
                                  elbow=elbow,
                                  keep=elbow_keep,
                                  num_iters=num_iters,
                                  num_init=num_init)
  labels, _ = kmeans_lib.assign(everything, found.result.centroids)
  labels = labels.reshape(num_images, height * width)
  mean, present = _cluster_saliency(labels, saliency.reshape(num_images, -1), found.k)
  votes = np.sum(np.asarray(present & (mean > threshold)), axis=0)
  salient = votes >= math.ceil(num_images * votes_percentage / 100)
  foreground = jnp.asarray(salient)[labels].reshape(num_images, height, width)
  masks = upsample_patches(foreground[..., None], centers, size)[..., 0]
  # Bilinear weights sum to 1 only up to rounding.
  return CoSegmentation(jnp.clip(masks, 0.0, 1.0), foreground, found.k, salient, found.sse)


@functools.partial(jax.jit, static_argnames=('size', 'num_parts'))
def _nearest_part(unit: jax.Array, centroids: jax.Array, masks: jax.Array, centers: jax.Array,
                  size: int, num_parts: int) -> jax.Array:
  """`[N, S, S]` int32: the part whose upsampled distance is least; `num_parts` off the mask."""
  num_images, height, width, channels = unit.shape
  distances = kmeans_lib.squared_distances(unit.reshape(-1, channels), centroids)
  distances = distances.reshape(num_images, height, width, num_parts)
  labels = jnp.argmin(upsample_patches(distances, centers, size), axis=-1).astype(jnp.int32)
  return jnp.where(masks < 0.5, num_parts, labels)


def part_maps(descriptors: jax.Array,
              foreground: jax.Array,
              masks: jax.Array,
              centers: jax.Array,
              num_parts: int,
              *,
              seed: int = 0,
              sample_interval: int = 100,
              num_iters: int = 100,
              num_init: int = 5) -> jax.Array:
  """Part label of every pixel: k-means of the foreground descriptors of all images.

  Args:
    descriptors: `[N, h, w, C]`, block-11 key descriptors (L2-normalised here).
    foreground: `[N, h, w]` bool, the foreground patches (`CoSegmentation.foreground`).
    masks: `[N, S, S]` soft foreground in [0, 1] (`CoSegmentation.masks`).
    centers: `[h, w, 2]` (x, y) pixel centres of the patches.
    num_parts: the number of parts (8 in the paper, 4 in the released preset).
    seed: seeds every random choice (k-means seedings).
    sample_interval: the part centroids are fitted on the foreground patches among every
      `sample_interval`-th patch of every image.
    num_iters: Lloyd iterations per k-means run.
    num_init: k-means seedings.

  Returns:
    `[N, S, S]` int32: at every pixel the part (0 ... num_parts - 1) whose centroid is nearest
    (squared distances upsampled like the masks, lowest label on ties), or `num_parts` where
    the mask is < 0.5.
  """
  num_images, height, width, channels = descriptors.shape
  size = masks.shape[-1]
  if jnp.shape(foreground) != (num_images, height, width):
    raise ValueError(f'foreground must be [{num_images}, {height}, {width}], '
                     f'got {jnp.shape(foreground)}')
  if jnp.shape(masks) != (num_images, size, size):
    raise ValueError(f'masks must be [{num_images}, S, S], got {jnp.shape(masks)}')
  if sample_interval < 1:
    raise ValueError(f'sample_interval must be >= 1, got {sample_interval}')
  unit = matching.l2_normalize(descriptors)
  fg = jnp.asarray(foreground).reshape(num_images, -1)
  sample_interval = dense_enough(lambda i: int(jnp.sum(fg[:, ::i])), sample_interval,
                                 10 * num_parts)
  weights = fg[:, ::sample_interval].reshape(-1)
  if int(jnp.sum(weights)) < num_parts:
    raise ValueError(f'part_maps: {int(jnp.sum(weights))} foreground patches in the sample, '
                     f'fewer than num_parts = {num_parts}; lower sample_interval')
  sample = _subsample(unit.reshape(num_images, height * width, channels), sample_interval)
  parts = kmeans_lib.kmeans(sample,
                            num_parts,
                            jax.random.key(seed),
                            weights=weights,
                            num_iters=num_iters,
                            num_init=num_init)
  return _nearest_part(unit, parts.centroids, jnp.asarray(masks), jnp.asarray(centers), size,
                       num_parts)
