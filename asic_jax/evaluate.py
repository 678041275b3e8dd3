"""Keypoint transfer through the canonical space, and PCK.

Transfer (DESIGN §5): a source point p is carried to the canonical point c =
flow_src(p) (bilinear, border padding); its prediction in the target is the
target pixel whose canonical coordinate is nearest to c, among pixels with
target mask >= 0.1 (a hard argmin; the first pixel in row-major order wins a
tie). Points are (x, y) pixels of the S frame, corner-aligned (DESIGN §8.2).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from asic_jax.ops import sampling

# PCK thresholds alpha reported everywhere: 0.10, 0.09, ..., 0.01 (the released order).
ALPHAS = tuple(round(0.1 - 0.01 * i, 2) for i in range(10))
MASK_THRESHOLD = 0.1


def canonical_points(flow: jax.Array, points: jax.Array) -> jax.Array:
  """The canonical point of each pixel `points [K, 2]` of an image with `flow [H, W, 2]`."""
  height, width = flow.shape[:2]
  return sampling.grid_sample(flow,
                              sampling.pixel_to_normalized(points, (width, height)),
                              padding='border')


def nearest_pixels(flow: jax.Array, mask: jax.Array | None, canonical: jax.Array) -> jax.Array:
  """Pixels `[K, 2]` (x, y, int32) whose canonical coordinate is nearest to `canonical [K, 2]`."""
  height, width = flow.shape[:2]
  distance = jnp.sum(jnp.square(flow.reshape(1, -1, 2) - canonical[:, None, :]), axis=-1)
  if mask is not None:
    distance = jnp.where(mask.reshape(1, -1) >= MASK_THRESHOLD, distance, jnp.inf)
  index = jnp.argmin(distance, axis=1).astype(jnp.int32)
  return jnp.stack([index % width, index // width], axis=-1)


def transfer(src_flow: jax.Array, trg_flow: jax.Array, trg_mask: jax.Array | None,
             points: jax.Array) -> jax.Array:
  """Carries `points [K, 2]` (pixels of the source) to the target: `[K, 2]` int32 pixels."""
  return nearest_pixels(trg_flow, trg_mask, canonical_points(src_flow, points))


@functools.partial(jax.jit, static_argnames=('chunk',))
def transfer_pairs(flows: jax.Array,
                   masks: jax.Array | None,
                   src: jax.Array,
                   trg: jax.Array,
                   points: jax.Array,
                   chunk: int = 8) -> jax.Array:
  """`transfer` for E pairs: flows `[N, H, W, 2]`, masks `[N, H, W]` or None, src/trg `[E]`,
  points `[E, K, 2]` -> `[E, K, 2]` int32. Pairs go `chunk` at a time to bound memory."""

  def one(args):
    s, t, p = args
    return transfer(flows[s], flows[t], None if masks is None else masks[t], p)

  return jax.lax.map(one, (src, trg, points), batch_size=chunk)


def pck(pred: np.ndarray,
        gt: np.ndarray,
        visible: np.ndarray,
        thresholds: np.ndarray,
        alphas=ALPHAS) -> np.ndarray:
  """PCK@alpha pooled over every visible keypoint of every pair.

  A keypoint is correct iff ||pred - gt|| < alpha * L (strict), L its pair's
  threshold (the target's PCK length).

  Args:
    pred, gt: `[E, K, 2]` (x, y) pixels.
    visible: `[E, K]` bool, the keypoints that count.
    thresholds: `[E]` L per pair.
    alphas: the alphas.

  Returns:
    `[len(alphas)]` fractions in [0, 1] (NaN when no keypoint is visible).
  """
  error = np.linalg.norm(np.asarray(pred, np.float32) - np.asarray(gt, np.float32), axis=-1)
  limit = np.asarray(alphas, np.float32)[:, None, None] * np.asarray(thresholds,
                                                                     np.float32)[None, :, None]
  correct = (error[None] < limit) & np.asarray(visible, bool)[None]
  count = np.asarray(visible, bool).sum()
  return correct.sum(axis=(1, 2)) / count if count else np.full(len(alphas), np.nan)
