"""Keypoint transfer through the canonical space (DESIGN §5).

A source point p is carried to the canonical point c = flow_src(p) (bilinear, border
padding); its prediction in the target is the target pixel whose canonical coordinate is
nearest to c, among pixels with target mask >= 0.1 (a hard argmin; the first pixel in
row-major order wins a tie). Points are (x, y) pixels of the S frame, corner-aligned (DESIGN
§8.2). `soft` refines the argmin to a window soft-argmax, `refine` moves it toward the
backbone cells most like the source point's, under a Gaussian prior around it. Scores of a transfer: `asic_jax.evaluation.metrics`.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from asic_jax.ops import sampling

MASK_THRESHOLD = 0.1  # target pixels a transfer may land on: mask >= this
FOREGROUND = 0.5  # source pixels a dense warp or an on-image edit carries: mask >= this
_DISTANCES = 1 << 24  # float32 query-to-pixel distances held at once (64 MB)


def canonical_points(flow: jax.Array, points: jax.Array) -> jax.Array:
  """The canonical point of each pixel `points [K, 2]` of an image with `flow [H, W, 2]`."""
  height, width = flow.shape[:2]
  return sampling.grid_sample(flow,
                              sampling.pixel_to_normalized(points, (width, height)),
                              padding='border')


def _distances(flow: jax.Array, mask: jax.Array | None, canonical: jax.Array) -> jax.Array:
  """`[K, H W]` squared canonical distances from `canonical [K, 2]` to every pixel of `flow`,
  infinite off the mask (mask < 0.1; a mask empty everywhere is searched whole, rather than
  every point landing on pixel (0, 0))."""
  distance = jnp.sum(jnp.square(flow.reshape(1, -1, 2) - canonical[:, None, :]), axis=-1)
  if mask is not None:
    allowed = mask.reshape(1, -1) >= MASK_THRESHOLD
    distance = jnp.where(allowed | ~jnp.any(allowed), distance, jnp.inf)
  return distance


def nearest_pixels(flow: jax.Array, mask: jax.Array | None, canonical: jax.Array) -> jax.Array:
  """Pixels `[K, 2]` (x, y, int32) whose canonical coordinate is nearest to `canonical [K, 2]`."""
  width = flow.shape[1]
  index = jnp.argmin(_distances(flow, mask, canonical), axis=1).astype(jnp.int32)
  return jnp.stack([index % width, index // width], axis=-1)


@functools.partial(jax.jit, static_argnames=('budget',))
def nearest_pixels_chunked(flow: jax.Array,
                           mask: jax.Array | None,
                           canonical: jax.Array,
                           *,
                           budget: int = _DISTANCES) -> jax.Array:
  """`nearest_pixels` for many queries `canonical [Q, 2]` (a dense warp: every pixel of an
  image), a chunk at a time so that at most `budget` distances are held: `[Q, 2]` int32."""
  chunk = max(1, budget // (flow.shape[0] * flow.shape[1]))
  return jax.lax.map(lambda c: nearest_pixels(flow, mask, c[None])[0], canonical, batch_size=chunk)


def soft_pixels(flow: jax.Array, mask: jax.Array | None, canonical: jax.Array, *, window: int,
                temperature: float) -> jax.Array:
  """Sub-pixel transfer: a soft-argmax of the canonical distances within a window around the
  hard argmin (GeoAware-SC's window soft-argmax), `[K, 2]` float32 (x, y) pixels.

  Pixels within `window` pixels (Chebyshev) of `nearest_pixels`' answer, and allowed by the
  mask as there, are weighted by softmax(-d^2 / (temperature * u^2)), d the canonical
  distance and u = 2 / (side - 1) the canonical size of one pixel (so `temperature` is in
  squared pixels, whatever the resolution); their weighted mean position is the answer.
  """
  height, width = flow.shape[:2]
  distance = _distances(flow, mask, canonical)
  index = jnp.argmin(distance, axis=1)
  xs = jnp.tile(jnp.arange(width), height)
  ys = jnp.repeat(jnp.arange(height), width)
  near = ((jnp.abs(xs[None] - (index % width)[:, None]) <= window) &
          (jnp.abs(ys[None] - (index // width)[:, None]) <= window) & jnp.isfinite(distance))
  unit = 2.0 / (max(height, width) - 1)
  logits = jnp.where(near, -distance / (temperature * unit**2), -jnp.inf)
  weights = jax.nn.softmax(logits, axis=1)
  return jnp.stack([weights @ xs.astype(jnp.float32), weights @ ys.astype(jnp.float32)], axis=-1)


def refine_pixels(coarse: jax.Array, source: jax.Array, target: jax.Array, centers: jax.Array,
                  allowed: jax.Array | None, *, sigma: float, temperature: float) -> jax.Array:
  """Coarse-to-fine transfer: ASIC's answer `coarse [K, 2]` (pixels) moved toward the target
  cells whose backbone descriptors match the source point's, `[K, 2]` float32 pixels.

  The cells within 3 sigma (Chebyshev) of `coarse` are weighted by softmax(cos / temperature
  - d^2 / (2 sigma^2)), cos the cosine similarity of a cell's descriptor to the source point's
  and d its distance from `coarse`: the canonical transfer is a Gaussian prior (sigma pixels)
  and the descriptors the likelihood; the answer is the weighted mean of the cells' centres.
  `temperature` 0 takes the most similar cell within 3 sigma instead (no prior).

  Args:
    coarse: `[K, 2]` the canonical transfer's pixels in the target.
    source: `[K, C]` unit descriptors of the source points.
    target: `[T, C]` unit descriptors of the target's cells, centred at `centers [T, 2]`.
    allowed: `[T]` bool, the cells a prediction may land on (the target's mask), or None.
    sigma: the prior's width in pixels (> 0); a point with no allowed cell within 3 sigma
      keeps `coarse`.
    temperature: of the cosine similarities (see above).
  """
  offsets = centers[None] - coarse[:, None]  # [K, T, 2]
  near = jnp.max(jnp.abs(offsets), axis=-1) <= 3 * sigma
  if allowed is not None:
    near = near & allowed[None]
  similarity = jnp.matmul(source, target.T, precision=jax.lax.Precision.HIGHEST)
  if temperature > 0:
    logits = similarity / temperature - jnp.sum(jnp.square(offsets), -1) / (2 * sigma**2)
    weights = jax.nn.softmax(jnp.where(near, logits, -jnp.inf), axis=1)
    moved = jnp.nan_to_num(weights) @ centers
  else:
    moved = centers[jnp.argmax(jnp.where(near, similarity, -jnp.inf), axis=1)]
  return jnp.where(jnp.any(near, axis=1, keepdims=True), moved, coarse.astype(jnp.float32))


def read_cells(grid: jax.Array, centers: jax.Array, points: jax.Array) -> jax.Array:
  """A regular grid of cells `[h, w, C]` (cell centres `[h, w, 2]` in pixels) read bilinearly
  (border) at pixels `points [K, 2]`: `[K, C]` float32."""
  origin, last = centers[0, 0], centers[-1, -1]
  height, width = grid.shape[:2]
  step = (last - origin) / jnp.maximum(jnp.asarray([width - 1, height - 1], jnp.float32), 1.0)
  cells = (points - origin) / step
  return sampling.grid_sample(grid.astype(jnp.float32),
                              sampling.pixel_to_normalized(cells, (width, height)),
                              padding='border')


def descriptors_at(grid: jax.Array, centers: jax.Array, points: jax.Array) -> jax.Array:
  """Unit descriptors `[K, C]` of a descriptor grid `[h, w, C]` (`read_cells`) at pixels
  `points [K, 2]`."""
  found = read_cells(grid, centers, points)
  return found / jnp.maximum(jnp.linalg.norm(found, axis=-1, keepdims=True), 1e-12)


# How a transfer picks its target pixel (`eval.transfer`): the paper's hard argmin, a window
# soft-argmax around it, or the argmin refined by the backbone's descriptors.
TRANSFERS = ('nearest', 'soft', 'refine')


class Descriptors(NamedTuple):
  """What `transfer(method='refine')` reads: unit descriptor grids `[h, w, C]` of the source
  and target (oriented as the run was: `extract.oriented_descriptors`), cell centres
  `[h, w, 2]` (pixels of the S frame), the prior's sigma (px) and the temperature
  (`refine_pixels`)."""
  source: jax.Array
  target: jax.Array
  centers: jax.Array
  sigma: float
  temperature: float


def transfer(src_flow: jax.Array,
             trg_flow: jax.Array,
             trg_mask: jax.Array | None,
             points: jax.Array,
             *,
             method: str = 'nearest',
             window: int | None = None,
             temperature: float | None = None,
             descriptors: Descriptors | None = None) -> jax.Array:
  """Carries `points [K, 2]` (pixels of the source) to the target: `[K, 2]` pixels, int32
  for 'nearest' (the paper's), float32 for 'soft' (`soft_pixels`, with its `window` and
  `temperature`: the config's `eval.soft_*`) and 'refine' (`refine_pixels` from the
  'nearest' answer, with `descriptors`: the config's `eval.refine_*`)."""
  canonical = canonical_points(src_flow, points)
  if method == 'soft':
    if window is None or temperature is None:
      raise ValueError("method 'soft' needs a window and a temperature (eval.soft_*)")
    return soft_pixels(trg_flow, trg_mask, canonical, window=window, temperature=temperature)
  if method not in TRANSFERS:
    raise ValueError(f'method must be one of {TRANSFERS}, got {method!r}')
  coarse = nearest_pixels(trg_flow, trg_mask, canonical)
  if method == 'nearest':
    return coarse
  if descriptors is None:
    raise ValueError("method 'refine' needs the backbone's descriptors")
  d = descriptors
  centers = d.centers.reshape(-1, 2).astype(jnp.float32)
  allowed = None
  if trg_mask is not None:
    allowed = canonical_points(trg_mask[..., None], centers)[:, 0] >= MASK_THRESHOLD
    allowed = allowed | ~jnp.any(allowed)
  return refine_pixels(coarse.astype(jnp.float32),
                       descriptors_at(d.source, d.centers, points),
                       d.target.reshape(centers.shape[0], -1),
                       centers,
                       allowed,
                       sigma=d.sigma,
                       temperature=d.temperature)


@functools.partial(jax.jit,
                   static_argnames=('chunk', 'method', 'window', 'temperature', 'refine_sigma',
                                    'refine_temperature'))
def transfer_pairs(flows: jax.Array,
                   masks: jax.Array | None,
                   src: jax.Array,
                   trg: jax.Array,
                   points: jax.Array,
                   chunk: int = 8,
                   *,
                   method: str = 'nearest',
                   window: int | None = None,
                   temperature: float | None = None,
                   grids: jax.Array | None = None,
                   centers: jax.Array | None = None,
                   refine_sigma: float = 1.0,
                   refine_temperature: float = 0.0) -> jax.Array:
  """`transfer` for E pairs: flows `[N, H, W, 2]`, masks `[N, H, W]` or None, src/trg `[E]`,
  points `[E, K, 2]` -> `[E, K, 2]`; for 'refine', the descriptor `grids [N, h, w, C]` (unit)
  and their cell `centers [h, w, 2]`. Pairs go `chunk` at a time to bound memory."""

  def one(args):
    s, t, p = args
    found = None
    if method == 'refine':
      found = Descriptors(grids[s], grids[t], centers, refine_sigma, refine_temperature)
    return transfer(flows[s],
                    flows[t],
                    None if masks is None else masks[t],
                    p,
                    method=method,
                    window=window,
                    temperature=temperature,
                    descriptors=found)

  return jax.lax.map(one, (src, trg, points), batch_size=chunk)
