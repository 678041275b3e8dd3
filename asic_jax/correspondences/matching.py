"""Pseudo-correspondences: mutual nearest neighbours of DINO descriptors over a pair list.

For a pair of images (a, b), patch i of a and patch j of b match when j is i's nearest
neighbour in b and i is j's nearest neighbour in a by cosine similarity ("best buddies"), and
both patches are foreground. As in the released pipeline (`prepare_data.py` ->
dino-vit-features' `corrs_from_feat`), the nearest neighbours are searched among **all**
patches of the other image and the mutual pairs are filtered by foreground afterwards; a
foreground patch whose nearest neighbour lies in the background therefore has no match.
Two differences from the released code: its test of b's end keeps a match when *any*
foreground patch of b has i as its nearest neighbour (not necessarily j); we require j itself
to be foreground. Its masks count a patch as foreground when the LANCZOS-resized mask is > 0;
ours when the mask at the patch is >= 0.5. A mutual pair whose similarity is <= 0 is dropped
(the pair layout reserves similarity 0 for padding); the released code keeps it.

The `T x T` similarity matrix of a pair (T = 15,625 patches at 256 px, stride 2: ~1 GB) is
never held whole: rows of a are processed `block` at a time, keeping each row's argmax and a
running max / argmax per column. Ties go to the lowest index, as numpy's argmax.

Frames: descriptors `[N, h, w, C]` on a patch grid whose centres `[h, w, 2]` are (x, y) pixels
of the S x S image frame (`asic_jax.models.dino.patch_centers`); matches are in those pixels,
in the pair-list layout of `asic_jax.data.collection`.
"""

import functools
from typing import Callable, Iterable, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

# Descriptors shorter than this are left at their (near-zero) length instead of divided by it.
_NORM_EPS = 1e-12


class NearestNeighbours(NamedTuple):
  """The nearest neighbours between the patches of two images a and b (T_a and T_b patches).

  Attributes:
    nn_ab: `[T_a]` int32, the patch of b most similar to each patch of a.
    sim_ab: `[T_a]` float32, that cosine similarity.
    nn_ba: `[T_b]` int32, the patch of a most similar to each patch of b.
    mutual: `[T_a]` bool, `nn_ba[nn_ab[i]] == i`.
  """
  nn_ab: jax.Array
  sim_ab: jax.Array
  nn_ba: jax.Array
  mutual: jax.Array


class PairMatches(NamedTuple):
  """What `match_pairs` returns, in the pair-list layout.

  Attributes:
    matches: `[P, M, 5]` float32 (x_a, y_a, x_b, y_b, similarity), pixels of the S frame; the
      `counts[p]` real matches of pair p first, in decreasing similarity, then zero rows.
    counts: `[P]` int32 real matches per pair (0 for a pair without any).
  """
  matches: np.ndarray
  counts: np.ndarray


def l2_normalize(x: jax.Array) -> jax.Array:
  """`x` divided by its L2 norm over the last axis, in float32 (a zero vector stays 0)."""
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), _NORM_EPS)


@functools.partial(jax.jit, static_argnames=('block',))
def mutual_nearest_neighbours(desc_a: jax.Array,
                              desc_b: jax.Array,
                              *,
                              block: int = 1024) -> NearestNeighbours:
  """Cosine nearest neighbours both ways, `block` rows of the similarity matrix at a time.

  Args:
    desc_a: `[T_a, C]` descriptors of image a (L2-normalised here).
    desc_b: `[T_b, C]` descriptors of image b (L2-normalised here).
    block: rows of a per step; only a `[block, T_b]` slice of the similarities is live.

  Returns:
    `NearestNeighbours`, lowest index on ties.
  """
  if block < 1:
    raise ValueError(f'block must be >= 1, got {block}')
  unit_a, unit_b = l2_normalize(desc_a), l2_normalize(desc_b)
  rows, channels = unit_a.shape
  steps = -(-rows // block)
  padded = jnp.pad(unit_a, ((0, steps * block - rows), (0, 0))).reshape(steps, block, channels)
  starts = jnp.arange(steps, dtype=jnp.int32) * block

  def step(carry, inputs):
    col_max, col_arg = carry
    chunk, start = inputs
    sims = jnp.matmul(chunk, unit_b.T, precision=lax.Precision.HIGHEST)  # [block, T_b]
    row_arg = jnp.argmax(sims, axis=1).astype(jnp.int32)
    row_max = jnp.take_along_axis(sims, row_arg[:, None], axis=1)[:, 0]
    # Padding rows past T_a must never win a column.
    real = (start + jnp.arange(block)) < rows
    sims = jnp.where(real[:, None], sims, -jnp.inf)
    chunk_arg = jnp.argmax(sims, axis=0).astype(jnp.int32)
    chunk_max = jnp.take_along_axis(sims, chunk_arg[None], axis=0)[0]
    # Strictly greater: on ties the earlier block, hence the lower row, keeps the column.
    better = chunk_max > col_max
    carry = (jnp.where(better, chunk_max, col_max), jnp.where(better, start + chunk_arg, col_arg))
    return carry, (row_arg, row_max)

  init = (jnp.full(unit_b.shape[:1], -jnp.inf), jnp.zeros(unit_b.shape[:1], jnp.int32))
  (_, nn_ba), (nn_ab, sim_ab) = lax.scan(step, init, (padded, starts))
  nn_ab = nn_ab.reshape(-1)[:rows]
  sim_ab = sim_ab.reshape(-1)[:rows]
  mutual = nn_ba[nn_ab] == jnp.arange(rows)
  return NearestNeighbours(nn_ab, sim_ab, nn_ba, mutual)


@functools.partial(jax.jit, static_argnames=('block', 'keep'))
def _match_pair(descriptors: jax.Array, foreground: jax.Array, centers: jax.Array, a: jax.Array,
                b: jax.Array, *, block: int, keep: int) -> tuple[jax.Array, jax.Array]:
  """The `keep` most similar foreground mutual matches of images a and b.

  Args:
    descriptors: `[N, T, C]`.
    foreground: `[N, T]` bool.
    centers: `[T, 2]` (x, y) pixel centre of every patch.
    a, b: `[]` int image indices.
    block: rows per step of the similarity search.
    keep: rows returned (<= T).

  Returns:
    `(rows, count)`: `[keep, 5]` (x_a, y_a, x_b, y_b, similarity), real rows first in
    decreasing similarity (lower patch of a first on ties), zeros after; `[]` real rows.
  """
  found = mutual_nearest_neighbours(descriptors[a], descriptors[b], block=block)
  valid = found.mutual & foreground[a] & foreground[b][found.nn_ab] & (found.sim_ab > 0)
  score, order = lax.top_k(jnp.where(valid, found.sim_ab, -jnp.inf), keep)
  real = score > -jnp.inf
  rows = jnp.concatenate(
      [centers[order], centers[found.nn_ab[order]], found.sim_ab[order][:, None]], axis=-1)
  return jnp.where(real[:, None], rows, 0.0), jnp.sum(real, dtype=jnp.int32)


def match_pairs(descriptors: jax.Array,
                foreground: jax.Array,
                centers: jax.Array,
                pairs: np.ndarray,
                *,
                block: int = 1024,
                max_matches: int | None = None,
                progress: Callable[[Iterable], Iterable] = iter) -> PairMatches:
  """Foreground mutual nearest neighbours of every pair in a pair list.

  One jitted call per pair (the Python loop runs one pair ahead of the host copy, so the
  device never waits); device memory holds two pairs' results at most, whatever P is.

  Args:
    descriptors: `[N, h, w, C]` descriptors of the N images (not necessarily normalised).
    foreground: `[N, h, w]` bool or soft masks at the patch grid; a patch is foreground
      where the value is >= 0.5.
    centers: `[h, w, 2]` (x, y) pixel centre of every patch, S frame.
    pairs: `[P, 2]` int image indices (a, b), a != b.
    block: rows of a per step of the similarity search (memory, not results).
    max_matches: keep at most this many matches per pair, the most similar; None keeps all.
    progress: wraps the loop over pairs (e.g. `tqdm.tqdm`), for a progress bar.

  Returns:
    `PairMatches`: matches `[P, M, 5]` with M the largest count (after the cap), and counts
    `[P]`. A pair without matches is all padding (the caller decides whether to warn).
  """
  descriptors = jnp.asarray(descriptors)
  num_images, height, width, channels = descriptors.shape
  tokens = height * width
  if jnp.shape(foreground) != (num_images, height, width):
    raise ValueError(f'foreground must be [{num_images}, {height}, {width}], '
                     f'got {jnp.shape(foreground)}')
  if jnp.shape(centers) != (height, width, 2):
    raise ValueError(f'centers must be [{height}, {width}, 2], got {jnp.shape(centers)}')
  pairs = np.asarray(pairs)
  if pairs.ndim != 2 or pairs.shape[1] != 2:
    raise ValueError(f'pairs must be [P, 2], got {pairs.shape}')
  if pairs.size and (pairs.min() < 0 or pairs.max() >= num_images):
    raise ValueError(f'pairs: image indices must be in [0, {num_images - 1}]')
  if np.any(pairs[:, 0] == pairs[:, 1]):
    raise ValueError('pairs: a pair joins an image with itself')
  if max_matches is not None and max_matches < 1:
    raise ValueError(f'max_matches must be >= 1 or None, got {max_matches}')
  keep = tokens if max_matches is None else min(max_matches, tokens)
  flat = descriptors.reshape(num_images, tokens, channels)
  fg = (jnp.asarray(foreground) >= 0.5).reshape(num_images, tokens)
  flat_centers = jnp.asarray(centers, jnp.float32).reshape(tokens, 2)

  found = []
  pending = None
  for a, b in progress(pairs.tolist()):
    current = _match_pair(flat, fg, flat_centers, a, b, block=block, keep=keep)
    if pending is not None:
      found.append(_trimmed(*pending))
    pending = current
  if pending is not None:
    found.append(_trimmed(*pending))
  counts = np.asarray([len(rows) for rows in found], np.int32)
  matches = np.zeros((len(pairs), int(counts.max(initial=0)), 5), np.float32)
  for index, rows in enumerate(found):
    matches[index, :len(rows)] = rows
  return PairMatches(matches, counts)


def _trimmed(rows: jax.Array, count: jax.Array) -> np.ndarray:
  """The real rows of one pair, on the host."""
  rows, count = jax.device_get((rows, count))
  return np.asarray(rows[:int(count)], np.float32)
