"""A synthetic collection with exact ground truth: random warps of one source image.

Image i shows the source through a backward map `f_i` (a random affine map
followed by a random thin-plate spline, both in the normalised frame of
`asic_jax.ops.sampling`): pixel `v` of image i shows source point `f_i(v)`.
Correspondences are therefore known exactly: a source point `p` lies at
`f_i^{-1}(p)` in image i, found by Newton's method from the nearest grid pixel
(residuals below 1e-4 of the normalised frame, i.e. far below a pixel).

The source is procedural (an animal-like shape with a smooth colour field and
coloured spots at the keypoints; analytic, so every image is rendered without
resampling) or a user image (`config.data.path`), whose keypoints are then a
grid over the image. Each image gets its own background and colour change.

From the exact correspondences come noisy sparse pseudo-matches for every pair
(Gaussian pixel noise on inliers and a chosen fraction of outliers, as DINO's
mutual nearest neighbours would be), ground-truth keypoints, soft masks and part
maps.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asic_jax.data import collection as collection_lib
from asic_jax.data import images as images_lib
from asic_jax.data import pairs as pairs_lib
from asic_jax.data import thresholds as thresholds_lib
from asic_jax.ops import sampling, tps

# The source shape: ellipses (centre x, centre y, radius x, radius y), normalised.
_BLOBS = ((0.0, 0.05, 0.55, 0.38), (0.5, -0.35, 0.2, 0.2), (-0.45, 0.4, 0.15, 0.25))
_SPOT_RADIUS = 0.07
_NEWTON_STEPS = 8
_INVERT_TOLERANCE = 1e-4


def _object_distance(p: jax.Array) -> jax.Array:
  """Approximate signed distance to the source shape, `[..., 2] -> [...]`."""
  dists = []
  for cx, cy, rx, ry in _BLOBS:
    q = jnp.stack([(p[..., 0] - cx) / rx, (p[..., 1] - cy) / ry], -1)
    dists.append((jnp.linalg.norm(q, axis=-1) - 1.0) * min(rx, ry))
  return jnp.min(jnp.stack(dists), axis=0)


def _spot_positions(num: int, rng: np.random.Generator) -> np.ndarray:
  """`[num, 2]` keypoints inside the shape, at least 2.5 spot radii apart."""
  candidates = rng.uniform(-0.9, 0.9, size=(4096, 2)).astype(np.float32)
  inside = candidates[np.asarray(_object_distance(jnp.asarray(candidates))) < -_SPOT_RADIUS]
  points = []
  for p in inside:
    if all(np.linalg.norm(p - q) > 2.5 * _SPOT_RADIUS for q in points):
      points.append(p)
      if len(points) == num:
        return np.asarray(points, np.float32)
  raise ValueError(f'data.synthetic.num_keypoints={num} spots do not fit on the shape')


def _procedural_source(p: jax.Array, spots: jax.Array, num_parts: int, pixel: float):
  """The procedural source at points `p [..., 2]`: rgb [..., 3] in [0, 1], mask, part."""
  x, y = p[..., 0], p[..., 1]
  rgb = jnp.stack([
      0.5 + 0.35 * jnp.cos(3 * x + 1), 0.5 + 0.35 * jnp.sin(2.5 * y + 0.5),
      0.5 + 0.3 * jnp.cos(2 * (x + y))
  ], -1)
  # Spots: a distinct saturated colour each, so keypoints are visible features.
  hues = jnp.arange(len(spots)) / len(spots)
  spot_rgb = jnp.stack([0.5 + 0.5 * jnp.cos(2 * jnp.pi * (hues + k / 3)) for k in range(3)], -1)
  d_spot = jnp.linalg.norm(p[..., None, :] - spots, axis=-1)  # [..., K]
  nearest = jnp.argmin(d_spot, axis=-1)
  in_spot = jnp.clip((_SPOT_RADIUS - jnp.min(d_spot, axis=-1)) / pixel + 0.5, 0, 1)
  rgb = rgb * (1 - in_spot[..., None]) + spot_rgb[nearest] * in_spot[..., None]
  mask = jnp.clip(0.5 - _object_distance(p) / pixel, 0.0, 1.0)
  angle = jnp.arctan2(y - _BLOBS[0][1], x - _BLOBS[0][0])
  part = jnp.floor((angle + jnp.pi) / (2 * jnp.pi) * num_parts).astype(jnp.int32)
  part = jnp.where(mask > 0.5, jnp.clip(part, 0, num_parts - 1), num_parts)
  return rgb, mask, part


def _image_source(p: jax.Array, image: jax.Array, num_parts: int):
  """A user image as the source: bilinear colour, all foreground, parts by angle."""
  rgb = sampling.grid_sample(image, p, padding='border')
  inside = jnp.all(jnp.abs(p) <= 1.0, axis=-1)
  angle = jnp.arctan2(p[..., 1], p[..., 0])
  part = jnp.floor((angle + jnp.pi) / (2 * jnp.pi) * num_parts).astype(jnp.int32)
  part = jnp.where(inside, jnp.clip(part, 0, num_parts - 1), num_parts)
  return rgb, inside.astype(jnp.float32), part


@functools.partial(jax.jit, static_argnums=(1,))
def _random_warps(key: jax.Array, n: int, scale: float):
  """n backward maps f_i = tps_i(affine_i(v)) as (affine [n, 2, 3], tps.Tps [n])."""
  k_rot, k_scale, k_shift, k_tps = jax.random.split(key, 4)
  angle = jax.random.uniform(k_rot, (n,), minval=-0.35, maxval=0.35)
  zoom = jax.random.uniform(k_scale, (n,), minval=0.85, maxval=1.15)
  shift = jax.random.uniform(k_shift, (n, 2), minval=-0.1, maxval=0.1)
  cos, sin = jnp.cos(angle) * zoom, jnp.sin(angle) * zoom
  affine = jnp.stack(
      [jnp.stack([cos, -sin, shift[:, 0]], -1),
       jnp.stack([sin, cos, shift[:, 1]], -1)], 1)
  grid = jnp.stack(jnp.meshgrid(jnp.linspace(-1, 1, 3), jnp.linspace(-1, 1, 3)), -1).reshape(9, 2)
  src = jnp.broadcast_to(grid, (n, 9, 2))
  dst = src + jax.random.uniform(k_tps, (n, 9, 2), minval=-scale, maxval=scale)
  return affine, tps.fit(dst, src)


def _backward(affine: jax.Array, spline: tps.Tps, v: jax.Array) -> jax.Array:
  """f(v) of one warp: `[..., 2]` image point -> source point."""
  moved = v @ affine[:, :2].T + affine[:, 2]
  return tps.evaluate(spline, moved)


def _invert(affine, spline, targets: jax.Array, size: int):
  """Points `v [M, 2]` of one image with f(v) = targets, and whether Newton converged."""
  coarse = sampling.identity_grid(size, size).reshape(-1, 2)
  mapped = _backward(affine, spline, coarse)
  start = coarse[jnp.argmin(jnp.sum(jnp.square(targets[:, None] - mapped[None]), -1), axis=1)]
  f = lambda v: _backward(affine, spline, v[None])[0]
  jacobian = jax.vmap(jax.jacfwd(f))

  def newton(v, _):
    residual = jax.vmap(f)(v) - targets
    (a, b), (c, d) = jnp.moveaxis(jacobian(v), (-2, -1), (0, 1))
    det = a * d - b * c  # 2 x 2 inverse in closed form: far cheaper to compile than solve
    step = jnp.stack(
        [d * residual[:, 0] - b * residual[:, 1], a * residual[:, 1] - c * residual[:, 0]],
        -1) / det[:, None]
    return v - step, None

  v, _ = jax.lax.scan(newton, start, None, length=_NEWTON_STEPS)
  error = jnp.linalg.norm(jax.vmap(f)(v) - targets, axis=-1)
  return v, error < _INVERT_TOLERANCE


@functools.partial(jax.jit, static_argnums=(2,))
def _invert_all(warps, targets: jax.Array, size: int):
  """`_invert` of the same targets in every image: `[N, M, 2]` and converged `[N, M]`."""
  return jax.vmap(_invert, in_axes=(0, 0, None, None))(warps[0], warps[1], targets, size)


def _render(key, warps, size, num_parts, source_fn):
  """Images [N, S, S, 3] in [-1, 1], masks [N, S, S], parts [N, S, S]."""
  affine, spline = warps
  grid = sampling.identity_grid(size, size)
  n = affine.shape[0]
  k_bg, k_col = jax.random.split(key)

  def one(affine, spline, k_bg, k_col):
    p = _backward(affine, spline, grid)
    rgb, mask, part = source_fn(p)
    kc = jax.random.split(k_col, 2)
    rgb = jnp.clip(
        rgb * jax.random.uniform(kc[0], (), minval=0.8, maxval=1.2) +
        jax.random.uniform(kc[1], (3,), minval=-0.08, maxval=0.08), 0, 1)
    kb = jax.random.split(k_bg, 4)
    phi = jax.random.uniform(kb[0], (), maxval=jnp.pi)
    freq = jax.random.uniform(kb[1], (), minval=4.0, maxval=12.0)
    stripes = jnp.sin(freq * (jnp.cos(phi) * grid[..., 0] + jnp.sin(phi) * grid[..., 1]))
    background = (jax.random.uniform(kb[2], (3,), minval=0.15, maxval=0.85) +
                  0.12 * stripes[..., None] * jax.random.choice(kb[3], jnp.asarray([-1.0, 1.0])))
    image = mask[..., None] * rgb + (1 - mask[..., None]) * jnp.clip(background, 0, 1)
    return image * 2 - 1, mask, part

  return jax.vmap(one)(affine, spline, jax.random.split(k_bg, n), jax.random.split(k_col, n))


def _bboxes(masks: np.ndarray) -> np.ndarray:
  """`[N, 4]` (x1, y1, x2, y2) tight boxes of the masks' foreground (pixels, inclusive)."""
  boxes = []
  for mask in masks > 0.5:
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if not len(rows):  # nothing in view: the whole image
      rows = cols = np.asarray([0, mask.shape[0] - 1])
    boxes.append([cols[0], rows[0], cols[-1], rows[-1]])
  return np.asarray(boxes, np.float32)


def make_synthetic(config: ml_collections.ConfigDict,
                   *,
                   size: int,
                   num_parts: int,
                   seed: int,
                   source: str | pathlib.Path | None = None,
                   max_per_image: int = 0,
                   random_per_image: int = 1) -> collection_lib.Collection:
  """The synthetic collection `config` (`config.data.synthetic`) describes.

  Args:
    config: the `data.synthetic` section: num_images, matches_per_pair,
      outlier_fraction, noise_px, warp_scale, num_keypoints.
    size: S, the image side.
    num_parts: part labels 0 ... num_parts - 1 (num_parts is background).
    seed: everything is drawn from this seed.
    source: an image file to warp instead of the procedural source.
    max_per_image: 0 for every pair, else a k-NN pair graph (`pairs.max_per_image`).
    random_per_image: of those k partners, how many are random (`pairs.random_per_image`).

  Returns:
    A `Collection` with images, masks, parts, pairs with pseudo-matches,
    exact keypoints, visibility, bbox thresholds and every ordered pair for PCK.
  """
  n, k = int(config.num_images), int(config.num_keypoints)
  if n < 2:
    raise ValueError(f'data.synthetic.num_images must be at least 2, got {n}')
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed)
  k_warp, k_render, k_match = jax.random.split(key, 3)
  warps = _random_warps(k_warp, n, float(config.warp_scale))
  if source is None:
    spots = jnp.asarray(_spot_positions(k, rng))
    source_fn = lambda p: _procedural_source(p, spots, num_parts, 2.0 / size)
  else:
    picture = jnp.asarray(images_lib.load_square(source, size)) * 0.5 + 0.5
    source_fn = lambda p: _image_source(p, picture, num_parts)
    side = int(np.ceil(np.sqrt(k)))
    lin = np.linspace(-0.6, 0.6, side)
    spots = jnp.asarray(np.stack(np.meshgrid(lin, lin), -1).reshape(-1, 2)[:k], jnp.float32)
  images, masks, parts = jax.jit(_render, static_argnums=(2, 3, 4))(k_render, warps, size,
                                                                    num_parts, source_fn)
  images, masks, parts = np.asarray(images), np.asarray(masks), np.asarray(parts)

  # Keypoints: the source spots seen in every image.
  points, converged = _invert_all(warps, spots, min(size, 64))
  points, converged = np.asarray(points), np.asarray(converged)
  keypoints = ((points + 1) * (size - 1) / 2).astype(np.float32)
  inside = np.all((keypoints >= 0) & (keypoints <= size - 1), axis=-1) & converged
  visible = inside & _mask_at(masks, keypoints)
  keypoints = np.where(visible[..., None], keypoints, 0.0).astype(np.float32)

  # With max_per_image, the k-NN pair graph on 8 x 8 thumbnails, as for large real collections.
  thumbnails = images.reshape(n, 8, size // 8, 8, size // 8, 3).mean(axis=(2, 4))
  pairs = pairs_lib.training_pairs(images,
                                   max_per_image,
                                   global_descriptors=thumbnails.reshape(n, -1),
                                   random_per_image=random_per_image,
                                   seed=seed)
  matches = _pseudo_matches(k_match, rng, warps, masks, pairs, config, size)
  bboxes = _bboxes(masks)
  thresholds = thresholds_lib.thresholds('bbox', size, n, bboxes=bboxes)
  return collection_lib.Collection(name='synthetic',
                                   images=images.astype(np.float32),
                                   names=tuple(f'synthetic_{i:03d}' for i in range(n)),
                                   masks=masks.astype(np.float32),
                                   parts=parts.astype(np.int32),
                                   num_parts=num_parts,
                                   pairs=pairs,
                                   matches=matches,
                                   keypoints=keypoints,
                                   visibility=visible,
                                   thresholds=thresholds,
                                   eval_pairs=collection_lib.eval_pairs_from_keypoints(
                                       keypoints, visible, thresholds),
                                   threshold_kind='bbox',
                                   bboxes=bboxes)


def _mask_at(masks: np.ndarray, points: np.ndarray) -> np.ndarray:
  """Whether `points [N, M, 2]` (pixels) fall on the foreground of their image."""
  size = masks.shape[1]
  cols = np.clip(np.rint(points[..., 0]).astype(int), 0, size - 1)
  rows = np.clip(np.rint(points[..., 1]).astype(int), 0, size - 1)
  return masks[np.arange(len(masks))[:, None], rows, cols] > 0.5


def _pseudo_matches(key, rng: np.random.Generator, warps, masks: np.ndarray, pairs: np.ndarray,
                    config: ml_collections.ConfigDict, size: int) -> np.ndarray:
  """`[P, M, 5]` noisy matches (x_a, y_a, x_b, y_b, similarity), zero-padded."""
  m = int(config.matches_per_pair)
  affine, spline = warps
  fg = [np.argwhere(mask > 0.5)[:, ::-1].astype(np.float32) for mask in masks]  # (x, y) pixels
  starts, real = [], []
  for a, _ in pairs:
    choice = rng.choice(len(fg[a]), size=min(m, len(fg[a])), replace=False)
    starts.append(np.pad(fg[a][choice], ((0, m - len(choice)), (0, 0))))
    real.append(np.arange(m) < len(choice))  # rows past a's foreground are padding
  starts = np.asarray(starts) + rng.uniform(-0.5, 0.5, size=(len(pairs), m, 2))

  @jax.jit
  def transfer(a, b, pixels):

    def one(args):  # one pair: image a's points, their source points, then image b's
      a, b, pixels = args
      warp_a = (affine[a], jax.tree.map(lambda t: t[a], spline))
      warp_b = (affine[b], jax.tree.map(lambda t: t[b], spline))
      source = _backward(*warp_a, sampling.pixel_to_normalized(pixels, size))
      ends, converged = _invert(*warp_b, source, min(size, 64))
      return sampling.normalized_to_pixel(ends, size), converged

    # A few pairs at a time: the inversion's start search holds [M, 4096] distances each.
    return jax.lax.map(one, (a, b, pixels), batch_size=16)

  ends, converged = transfer(pairs[:, 0], pairs[:, 1], starts.astype(np.float32))
  ends = np.asarray(ends)
  valid = (np.asarray(real) & np.asarray(converged) & np.all(
      (ends >= 0) & (ends <= size - 1), axis=-1) & _mask_at(masks[pairs[:, 1]], ends))
  ends = ends + rng.normal(scale=float(config.noise_px), size=ends.shape)
  outlier = rng.uniform(size=valid.shape) < float(config.outlier_fraction)
  for row, b in enumerate(pairs[:, 1]):
    count = int(outlier[row].sum())
    ends[row, outlier[row]] = fg[b][rng.choice(len(fg[b]), size=count)]
  ends = np.clip(ends, 0, size - 1)
  similarity = rng.uniform(0.3, 1.0, size=valid.shape)
  matches = np.concatenate([starts, ends, similarity[..., None]], -1).astype(np.float32)
  # Valid matches first, padding (all zeros) after, as every loader lays them out.
  order = np.argsort(~valid, axis=1, kind='stable')
  matches = np.take_along_axis(matches * valid[..., None], order[..., None], axis=1)
  if not valid.any():
    raise ValueError('the synthetic warps left no pair with a match; lower warp_scale')
  return matches
