"""Orientation-aware alignment: which photos to show the network mirrored.

Car and motorbike photos face left in some photos and right in others, and no smooth map
aligns a photo with its mirror image (ASIC's own stated limit, paper §5). GeoAware-SC
(`shared/paper/related-geoaware-left-right.md`) aligns each test pair's poses by trying the
target's horizontal flip and keeping the one whose descriptors agree better. For a
collection the choices must agree with one another, so they are made jointly:

1. Each image's descriptors are taken twice: of the photo, and of its mirror image put back
   on the photo's grid (cell j of the mirrored pass belongs to the photo's cell w - 1 - j),
   so both describe the same places.
2. For every listed pair (i, j): `same_ij`, how well i's descriptors find partners in j's
   (the mean over i's foreground cells of the best cosine similarity among j's foreground
   cells, averaged both ways), and `opposite_ij`, the same with j's mirrored descriptors.
   `agreement_ij = same_ij - opposite_ij` > 0 says i and j face the same way.
3. Orientations s in {+1, -1}^N maximise sum over pairs of agreement_ij s_i s_j: the sign of
   the leading eigenvector of the agreement matrix, then single flips while any raises the
   sum. The global mirror is free; the answer flips the fewer images (image 0 unflipped on a
   tie).

Descriptor grids larger than `MAX_GRID` cells a side are average-pooled over the foreground
first (DINO at stride 2 has 125 x 125 patches): the decision is about the whole photo.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from asic_jax.correspondences import matching

MAX_GRID = 32


@dataclasses.dataclass(frozen=True)
class Orientation:
  """The decision and what it was made from.

  Attributes:
    flipped: `[N]` bool, the images the network sees mirrored.
    agreement: `[N, N]` float32, same - opposite for every listed pair (symmetric, 0 where
      no pair was listed).
    gain: the objective's value for `flipped` minus its value with no image flipped (0 when
      nothing is flipped).
  """
  flipped: np.ndarray
  agreement: np.ndarray
  gain: float


def _pool(descriptors: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Unit descriptors `[N, h', w', C]` averaged over the foreground in f x f cells so that
  the grid has at most `MAX_GRID` cells a side, and the pooled foreground `[N, h', w']`.
  Pooling commutes with the mirror (pooling a mirrored grid gives the mirrored pooled grid):
  where the cells cannot be cropped evenly on both sides, the two croppings are averaged."""
  n, h, w, _ = descriptors.shape
  factor = max(-(-h // MAX_GRID), -(-w // MAX_GRID))
  unit = np.asarray(matching.l2_normalize(jnp.asarray(descriptors)))
  fg = np.asarray(foreground, np.float32)
  if factor == 1:
    return unit, fg >= 0.5
  h2, w2 = h // factor, w // factor
  top, spare = (h - h2 * factor) // 2, w - w2 * factor

  def pooled(unit, fg, left):
    unit = unit[:, top:top + h2 * factor, left:left + w2 * factor]
    fg = fg[:, top:top + h2 * factor, left:left + w2 * factor]
    blocks = lambda x: x.reshape(n, h2, factor, w2, factor, *x.shape[3:])
    weight = blocks(fg).sum(axis=(2, 4))
    mean = blocks(unit * fg[..., None]).sum(axis=(2, 4)) / np.maximum(weight, 1e-6)[..., None]
    return mean, weight

  mean, weight = pooled(unit, fg, spare // 2)
  if spare % 2:
    other, other_weight = pooled(unit, fg, spare - spare // 2)
    mean, weight = (mean + other) / 2, (weight + other_weight) / 2
  return mean, weight >= 0.5 * factor * factor


@functools.partial(jax.jit, static_argnames=())
def _best_match_means(a: jax.Array, fg_a: jax.Array, b: jax.Array, fg_b: jax.Array):
  """Mean over a's foreground of the best cosine similarity in b's foreground, and back:
  `[2]` for unit descriptors `a, b [T, C]` and foregrounds `[T]` bool."""
  sims = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
  sims = jnp.where(fg_a[:, None] & fg_b[None, :], sims, -jnp.inf)
  best_ab = jnp.max(sims, axis=1)
  best_ba = jnp.max(sims, axis=0)
  mean = lambda best, fg: jnp.sum(jnp.where(fg, best, 0.0)) / jnp.maximum(jnp.sum(fg), 1)
  return jnp.stack([mean(best_ab, fg_a), mean(best_ba, fg_b)])


def agreement(descriptors: np.ndarray, mirrored: np.ndarray, foreground: np.ndarray,
              pairs: np.ndarray) -> np.ndarray:
  """`[N, N]` same - opposite (module docstring, step 2) for the listed pairs.

  Args:
    descriptors: `[N, h, w, C]` of the photos.
    mirrored: `[N, h, w, C]` of their mirror images, on the photos' grid.
    foreground: `[N, h, w]` (>= 0.5 counts) on that grid.
    pairs: `[P, 2]` image indices.
  """
  unit, fg = _pool(descriptors, foreground)
  unit_m, _ = _pool(mirrored, foreground)
  n = len(unit)
  flat = jnp.asarray(unit.reshape(n, -1, unit.shape[-1]))
  flat_m = jnp.asarray(unit_m.reshape(n, -1, unit.shape[-1]))
  fg = jnp.asarray(fg.reshape(n, -1))
  out = np.zeros((n, n), np.float32)
  for i, j in np.asarray(pairs).tolist():
    same = _best_match_means(flat[i], fg[i], flat[j], fg[j])
    opposite = _best_match_means(flat[i], fg[i], flat_m[j], fg[j])
    out[i, j] = out[j, i] = float(jnp.mean(same) - jnp.mean(opposite))
  return out


def solve(agreement_matrix: np.ndarray) -> np.ndarray:
  """Signs `[N]` in {+1, -1} maximising sum_ij A_ij s_i s_j (module docstring, step 3)."""
  a = np.asarray(agreement_matrix, np.float64)
  n = len(a)
  if n == 0:
    return np.ones(0)
  _, vectors = np.linalg.eigh(a)
  signs = np.where(vectors[:, -1] >= 0, 1.0, -1.0)
  while True:
    # Flipping image i changes the objective by -4 s_i (A s)_i (A has a zero diagonal).
    change = -4.0 * signs * (a @ signs)
    best = int(np.argmax(change))
    if change[best] <= 1e-12:
      break
    signs[best] = -signs[best]
  flipped = signs < 0
  if flipped.sum() > n - flipped.sum() or (2 * flipped.sum() == n and flipped[0]):
    signs = -signs
  return signs


def evidence(agreement_matrix: np.ndarray, signs: np.ndarray) -> np.ndarray:
  """`[N]` t-statistics: for each image, how consistently its listed pairs agree with `signs`
  (the mean of A_ij s_i s_j over its partners j over its standard error; large and positive:
  its orientation is well supported, negative: the other orientation would agree better)."""
  a = np.asarray(agreement_matrix, np.float64)
  out = np.zeros(len(a))
  for i in range(len(a)):
    listed = a[i] != 0
    if listed.sum() < 2:
      continue
    values = a[i, listed] * signs[listed] * signs[i]
    spread = values.std(ddof=1) / np.sqrt(listed.sum())
    out[i] = values.mean() / max(spread, 1e-12)
  return out


def guard(agreement_matrix: np.ndarray, signs: np.ndarray, min_t: float) -> np.ndarray:
  """`signs` with every flip that its evidence does not support at `min_t` undone, the least
  supported first, the evidence recomputed after each: a flip the descriptors only weakly
  favour costs more (a mirrored photo that should not be) than it gains."""
  signs = np.array(signs, np.float64)
  if signs.sum() < 0:
    signs = -signs
  while (signs < 0).any():
    t = evidence(agreement_matrix, signs)
    flipped = np.nonzero(signs < 0)[0]
    weakest = flipped[np.argmin(t[flipped])]
    if t[weakest] >= min_t:
      break
    signs[weakest] = 1.0
  return signs


def decide(descriptors: np.ndarray,
           mirrored: np.ndarray,
           foreground: np.ndarray,
           pairs: np.ndarray,
           *,
           min_t: float = 0.0) -> Orientation:
  """The joint orientation of a collection (module docstring; arguments as `agreement`),
  each flip kept only where its evidence reaches `min_t` (`guard`)."""
  a = agreement(descriptors, mirrored, foreground, pairs)
  np.fill_diagonal(a, 0.0)
  signs = guard(a, solve(a), min_t)
  gain = 0.5 * float(signs @ a @ signs - np.sum(a))
  return Orientation(flipped=signs < 0, agreement=a, gain=gain)


def decide_new(new: np.ndarray,
               new_mirrored: np.ndarray,
               new_foreground: np.ndarray,
               reference: np.ndarray,
               reference_foreground: np.ndarray,
               reference_flipped: np.ndarray,
               *,
               min_t: float = 0.0) -> np.ndarray:
  """`[M]` bool: which photos outside a collection to show mirrored, each on its own against
  the collection as it was oriented: its mirror image's agreement with collection image j's
  photo minus its own, signed by j's orientation (as `agreement` scores pairs), is averaged
  over j; it is flipped where that is positive with a t-statistic of at least `min_t`.

  Args:
    new, new_mirrored: `[M, h, w, C]`, the new photos' descriptors and their mirror images'
      on the photos' grid; new_foreground `[M, h, w]`.
    reference: `[N, h, w, C]` the collection's photos' descriptors (not oriented);
      reference_foreground `[N, h, w]`; reference_flipped `[N]` bool, its orientation.
  """
  unit, fg = _pool(new, new_foreground)
  unit_m, _ = _pool(new_mirrored, new_foreground)
  ref, ref_fg = _pool(reference, reference_foreground)
  flat = lambda x: jnp.asarray(x.reshape(len(x), -1, x.shape[-1]))
  unit, unit_m, ref = flat(unit), flat(unit_m), flat(ref)
  fg, ref_fg = jnp.asarray(fg.reshape(len(fg), -1)), jnp.asarray(ref_fg.reshape(len(ref_fg), -1))
  signs = np.where(np.asarray(reference_flipped, bool), -1.0, 1.0)
  flipped = np.zeros(len(unit), bool)
  for i in range(len(unit)):
    gains = signs * np.asarray([
        float(
            jnp.mean(_best_match_means(unit_m[i], fg[i], ref[j], ref_fg[j])) -
            jnp.mean(_best_match_means(unit[i], fg[i], ref[j], ref_fg[j]))) for j in range(len(ref))
    ])
    spread = gains.std(ddof=1) / np.sqrt(len(gains)) if len(gains) > 1 else np.inf
    flipped[i] = gains.mean() > 0 and gains.mean() / max(spread, 1e-12) >= min_t
  return flipped


def mirror_grid(grid: np.ndarray) -> np.ndarray:
  """A descriptor (or saliency) grid `[N, h, w, ...]` of mirror images, put back on the
  photos' grid: cell j of a mirrored image covers the photo's cell w - 1 - j (the grids of
  `models.dino` and `models.vgg` are symmetric: their cells mirror onto cells)."""
  return np.asarray(grid)[:, :, ::-1]


def pick(grid: np.ndarray, mirrored_grid: np.ndarray, flipped: np.ndarray) -> np.ndarray:
  """Per image, the photo's grid or (where `flipped`) its mirror image's, both on the
  photo's grid: what the oriented collection's descriptors are."""
  flipped = np.asarray(flipped, bool).reshape((-1,) + (1,) * (np.ndim(grid) - 1))
  return np.where(flipped, mirrored_grid, grid)
