"""PCK and k-cycle PCK of a transfer (any `TransferFn`: ASIC's, a baseline's).

PCK@alpha: a keypoint is correct iff ||pred - gt|| < alpha * L (strict), L the
target's PCK length ('bbox': max side of its box; 'img': S; 'kp_bbox': max side of
the tight box around its annotated keypoints). Pooled over keypoints by default;
`pck_per_pair` averages per image pair instead.

k-CyPCK (paper §4.4): seeded tuples of k distinct images (within one group);
keypoints visible in all k images are chained i1 -> ... -> ik -> i1, every hop
scored against that hop's ground truth and that hop's target threshold (the
released code pairs thresholds with the wrong rows, DESIGN §8.3).
"""

from typing import Callable

import numpy as np

# PCK thresholds alpha reported everywhere: 0.10, 0.09, ..., 0.01 (the released order).
ALPHAS = tuple(round(0.1 - 0.01 * i, 2) for i in range(10))


def _correct(pred, gt, visible, thresholds, alphas) -> np.ndarray:
  """`[A, E, K]` bool: visible and within alpha * threshold (strict, float32 as released)."""
  error = np.linalg.norm(np.asarray(pred, np.float32) - np.asarray(gt, np.float32), axis=-1)
  limit = (np.asarray(alphas, np.float32)[:, None, None] *
           np.asarray(thresholds, np.float32)[None, :, None])
  return (error[None] < limit) & np.asarray(visible, bool)[None]


def pck(pred: np.ndarray,
        gt: np.ndarray,
        visible: np.ndarray,
        thresholds: np.ndarray,
        alphas=ALPHAS) -> np.ndarray:
  """PCK@alpha pooled over every visible keypoint of every pair.

  Args:
    pred, gt: `[E, K, 2]` (x, y) pixels.
    visible: `[E, K]` bool, the keypoints that count.
    thresholds: `[E]` the PCK length L of each pair's target.
    alphas: the alphas.

  Returns:
    `[len(alphas)]` fractions in [0, 1] (NaN when no keypoint is visible).
  """
  count = np.asarray(visible, bool).sum()
  correct = _correct(pred, gt, visible, thresholds, alphas)
  return correct.sum(axis=(1, 2)) / count if count else np.full(len(alphas), np.nan)


def pck_per_pair(pred: np.ndarray,
                 gt: np.ndarray,
                 visible: np.ndarray,
                 thresholds: np.ndarray,
                 alphas=ALPHAS) -> np.ndarray:
  """PCK@alpha of each pair, averaged over the pairs that have a visible keypoint."""
  counts = np.asarray(visible, bool).sum(1)
  keep = counts > 0
  if not keep.any():
    return np.full(len(alphas), np.nan)
  per_pair = _correct(pred, gt, visible, thresholds, alphas).sum(2)[:, keep] / counts[keep]
  return per_pair.mean(axis=1)


def sample_tuples(n: int,
                  k: int,
                  count: int,
                  *,
                  groups: np.ndarray | None = None,
                  seed: int = 0) -> np.ndarray:
  """`[count, k]` tuples of k distinct images, all in one group, drawn with `seed`.

  The first image is uniform over the images whose group holds at least k images;
  the others are drawn without replacement from its group.
  """
  groups = np.zeros(n, np.int64) if groups is None else np.asarray(groups)
  members = {g: np.nonzero(groups == g)[0] for g in np.unique(groups)}
  eligible = np.asarray([i for i in range(n) if len(members[groups[i]]) >= k])
  if not len(eligible):
    raise ValueError(f'no group holds {k} images for {k}-cycles')
  rng = np.random.default_rng(seed)
  tuples = []
  for _ in range(count):
    first = rng.choice(eligible)
    others = [i for i in members[groups[first]] if i != first]
    tuples.append([first, *rng.choice(others, size=k - 1, replace=False)])
  return np.asarray(tuples, np.int32)


TransferFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def chain(transfer_fn: TransferFn, tuples: np.ndarray, start: np.ndarray) -> np.ndarray:
  """Carries `start [T, K, 2]` (points in each tuple's first image) round each tuple.

  Args:
    transfer_fn: `(src [E], trg [E], points [E, K, 2]) -> [E, K, 2]` predictions.
    tuples: `[T, k]` image indices; hop j goes from tuples[:, j] to tuples[:, j + 1],
      the last hop back to tuples[:, 0].
    start: `[T, K, 2]` points in the first images.

  Returns:
    `[k, T, K, 2]`: the prediction after each hop (hop-major; hop j lands in image
    tuples[:, (j + 1) % k]). Each hop starts from the previous hop's prediction.
  """
  k = tuples.shape[1]
  points, out = np.asarray(start), []
  for hop in range(k):
    points = np.asarray(transfer_fn(tuples[:, hop], tuples[:, (hop + 1) % k], points))
    out.append(points)
  return np.stack(out)


def k_cycle_pck(transfer_fn: TransferFn,
                tuples: np.ndarray,
                keypoints: np.ndarray,
                visibility: np.ndarray,
                thresholds: np.ndarray,
                alphas=ALPHAS) -> np.ndarray:
  """k-CyPCK pooled over every hop of every tuple (DESIGN §5, §8.3).

  Keypoints count when visible in all k images of the tuple; hop j is scored
  against the ground truth of its target image and that image's threshold.
  """
  k = tuples.shape[1]
  visible = np.all(np.asarray(visibility)[tuples], axis=1)  # [T, K]
  pred = chain(transfer_fn, tuples, np.asarray(keypoints)[tuples[:, 0]])
  targets = np.roll(tuples, -1, axis=1).T  # [k, T]: the image each hop lands in
  gt = np.asarray(keypoints)[targets]
  return pck(pred.reshape(-1, *pred.shape[2:]), gt.reshape(-1, *gt.shape[2:]),
             np.broadcast_to(visible, (k,) + visible.shape).reshape(-1, visible.shape[1]),
             np.asarray(thresholds)[targets].reshape(-1), alphas)


def cycle_consistency(transfer_fn: TransferFn,
                      tuples: np.ndarray,
                      masks: np.ndarray,
                      size: int,
                      *,
                      points: int = 64,
                      alphas=ALPHAS) -> tuple[np.ndarray, int]:
  """Without ground truth: the fraction of foreground points that come back home.

  A regular g x g grid of pixels (g = round(sqrt(points))) over each tuple's first image:
  its foreground points (mask >= 0.5; every point when the image has none) are chained
  round the tuple, and a point is consistent iff its return lands within alpha * S of
  where it started.

  Returns:
    (`[len(alphas)]` fractions, the number of points that counted).
  """
  side = max(int(round(np.sqrt(points))), 1)
  # Whole pixels (the centres of g x g cells), as a transfer's predictions are.
  centres = np.minimum(np.floor((np.arange(side) + 0.5) * size / side), size - 1).astype(int)
  pixels = np.stack(np.meshgrid(centres, centres, indexing='xy'), -1).reshape(-1, 2)
  grid = pixels.astype(np.float32)
  inside = np.asarray(masks)[tuples[:, 0]][:, pixels[:, 1], pixels[:, 0]] >= 0.5
  visible = inside | ~inside.any(axis=1, keepdims=True)
  starts = np.broadcast_to(grid, (len(tuples),) + grid.shape).astype(np.float32)
  back = chain(transfer_fn, tuples, starts)[-1]
  values = pck(back, starts, visible, np.full(len(tuples), float(size)), alphas)
  return values, int(visible.sum())
