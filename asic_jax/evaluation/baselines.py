"""The paper's baselines under ASIC's own protocol (`mode=baseline`, `asic_jax.jobs.baseline`): NN
and NBB-style MLS, over any backbone.

* `nn` (DINO+NN, VGG+NN): each source keypoint takes the descriptor of its patch; its
  prediction is the centre of the target patch most cosine-similar to it.
* `mls` (DINO+MLS, VGG+MLS; NBB-style): the mutual nearest neighbours of the pair's
  descriptors (both ends in the foreground where the collection has masks) are control
  points, and the affine moving-least-squares deformation they define (Schaefer et al.,
  *Image deformation using moving least squares*, SIGGRAPH 2006, §2.1) carries each keypoint.

Descriptors come from `features.backbone`: DINO (or DINOv2) with the `baseline.preset` settings
(`dvd`: the protocol behind the paper's DINO+NN numbers, block 9 key, log-binned, stride 4, 224 px;
`asic`: ASIC's own pseudo-match descriptors), or VGG-16's `features.vgg.match_layer` on its
`features.vgg.stride` grid at `data.img_size`. Scores go through `protocol.score`, the very protocol
ASIC is scored with, into `eval/baseline_<backbone>_<method>.json` and `.md`.

Frames: points are (x, y) pixels of the collection's S frame; descriptors live at `size` px,
and a corner-aligned resize maps pixel p of the S frame to p (size - 1) / (S - 1).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asic_jax.correspondences import extract, matching, orientation
from asic_jax.errors import UserError
from asic_jax.evaluation import protocol
from asic_jax.models import dino
from asic_jax.ops import sampling

METHODS = ('nn', 'mls')
# DINO descriptor presets (DESIGN §5).
PRESETS = {
    'dvd': dict(layer=9, facet='key', stride=4, img_size=224, bin_hierarchy=2),
    'asic': dict(layer=9, facet='key', stride=2, img_size=0, bin_hierarchy=0),
}
# Below this squared distance (normalised frame) a keypoint sits on a control point.
_ON_CONTROL = 1e-12


@functools.partial(jax.jit, static_argnames=('chunk',))
def nearest_patches(descriptors: jax.Array,
                    centers: jax.Array,
                    src: jax.Array,
                    trg: jax.Array,
                    points: jax.Array,
                    chunk: int = 8,
                    allowed: jax.Array | None = None) -> jax.Array:
  """NN transfer: the target patch most cosine-similar to each source point's patch.

  Args:
    descriptors: `[N, h, w, C]`.
    centers: `[h, w, 2]` patch centres, in the pixel frame of `points`.
    src, trg: `[E]` image indices.
    points: `[E, K, 2]` source points; each takes the descriptor of its nearest patch.
    chunk: pairs at a time.
    allowed: `[N, h, w]` bool, the patches a prediction may land on (the target's
      foreground or photo, as ASIC's transfer); None: all.

  Returns:
    `[E, K, 2]` centres of the chosen target patches.
  """
  flat = matching.l2_normalize(descriptors.reshape(descriptors.shape[0], -1,
                                                   descriptors.shape[-1]))
  flat_centers = centers.reshape(-1, 2)
  allowed = jnp.ones(flat.shape[:2], bool) if allowed is None else allowed.reshape(
      flat.shape[:2])

  def one(args):
    s, t, p = args
    patch = jnp.argmin(jnp.sum(jnp.square(p[:, None] - flat_centers[None]), -1), axis=1)
    similarity = jnp.matmul(flat[s][patch], flat[t].T,
                            precision=jax.lax.Precision.HIGHEST)  # [K, h * w], no TF32
    similarity = jnp.where(allowed[t] | ~allowed[t].any(), similarity, -jnp.inf)
    return flat_centers[jnp.argmax(similarity, axis=1)]

  return jax.lax.map(one, (src, trg, points), batch_size=chunk)


def mls_affine(control_src: jax.Array,
               control_trg: jax.Array,
               valid: jax.Array,
               points: jax.Array,
               *,
               alpha: float = 1.0) -> jax.Array:
  """Affine moving-least-squares deformation (Schaefer et al. 2006, Eq. 2-5) of `points`.

  For a point v, weights w_i = 1 / |p_i - v|^(2 alpha); weighted centroids p*, q*; then
  f(v) = (v - p*) M + q* with M = (sum_i w_i p^_i^T p^_i)^-1 sum_i w_i p^_i^T q^_i, rows
  p^_i = p_i - p*, q^_i = q_i - q*. f maps each control point p_i to q_i, and reproduces
  any affine map the control points follow exactly. A point on a control point takes its
  q_i; with fewer than three valid control points (or collinear ones) the deformation is
  the translation q* - p*, and with none the identity.

  Args:
    control_src: `[M, 2]` control points p_i (x, y).
    control_trg: `[M, 2]` their images q_i.
    valid: `[M]` bool, False for padding rows.
    points: `[K, 2]` points to carry, in the frame of `control_src`.
    alpha: the weights' falloff.

  Returns:
    `[K, 2]` f(points), in the frame of `control_trg`.
  """
  p, q, valid = jnp.asarray(control_src), jnp.asarray(control_trg), jnp.asarray(valid, bool)

  def one(v):
    d2 = jnp.sum(jnp.square(p - v), axis=-1)
    on = valid & (d2 < _ON_CONTROL)
    w = jnp.where(valid, 1.0 / jnp.maximum(d2, _ON_CONTROL)**alpha, 0.0)
    total = jnp.maximum(w.sum(), 1e-30)
    p_star, q_star = (w @ p) / total, (w @ q) / total
    p_hat, q_hat = p - p_star, q - q_star
    moment = (p_hat * w[:, None]).T @ p_hat  # [2, 2]
    cross = (p_hat * w[:, None]).T @ q_hat
    det = moment[0, 0] * moment[1, 1] - moment[0, 1] * moment[1, 0]
    # Collinear or too few control points: the scale-free determinant test falls back.
    enough = (valid.sum() >= 3) & (det > 1e-9 * jnp.square(jnp.trace(moment)))
    inverse = jnp.asarray([[moment[1, 1], -moment[0, 1]], [-moment[1, 0], moment[0, 0]]
                          ]) / jnp.where(enough, det, 1.0)
    affine = (v - p_star) @ (inverse @ cross) + q_star
    moved = jnp.where(enough, affine, v - p_star + q_star)
    moved = jnp.where(valid.any(), moved, v)
    return jnp.where(on.any(), q[jnp.argmax(on)], moved)

  return jax.vmap(one)(jnp.asarray(points))


@functools.partial(jax.jit, static_argnames=('alpha',))
def _mls_pairs(descriptors, foreground, centers, src, trg, points, alpha):
  """MLS transfer of E pairs: mutual NNs of each pair as control points, in normalised
  coordinates of the descriptor grid's frame (scale-free weights)."""
  num, height, width, channels = descriptors.shape
  flat = descriptors.reshape(num, height * width, channels)
  fg = foreground.reshape(num, height * width)
  flat_centers = centers.reshape(-1, 2)
  scale = jnp.max(flat_centers) + 1.0

  def one(args):
    s, t, pts = args
    found = matching.mutual_nearest_neighbours(flat[s], flat[t])
    valid = found.mutual & fg[s] & fg[t][found.nn_ab]
    moved = mls_affine(flat_centers / scale, flat_centers[found.nn_ab] / scale, valid, pts / scale,
                       alpha=alpha)
    return moved * scale

  return jax.lax.map(one, (src, trg, points))


def _oriented(describe, images: np.ndarray, flipped: np.ndarray | None) -> np.ndarray:
  """`describe(images) -> [N, h, w, C]` with each flipped image described as its mirror image,
  put back on the photo's grid (`orientation.mirror_grid`): the same orientation ASIC's run
  trains with, so the comparison stays fair."""
  found = describe(images)
  if flipped is not None and np.any(flipped):
    flipped = np.asarray(flipped, bool)
    found = np.array(found, copy=True)
    found[flipped] = orientation.mirror_grid(
        describe(np.ascontiguousarray(np.asarray(images)[flipped][:, :, ::-1])))
  return found


def _dino_descriptors(config, collection):
  b = config.baseline
  if b.preset not in PRESETS:
    raise UserError(f'baseline.preset must be one of {sorted(PRESETS)}, got {b.preset!r}')
  settings = dict(PRESETS[b.preset])
  settings.update({k: b[k] for k in settings if b.get(k) not in (None, -1, '')})
  size = settings['img_size'] or collection.size
  arch, params = extract.load_model(config)
  if arch.patch_size % settings['stride'] or (size - arch.patch_size) % settings['stride']:
    raise UserError(f"baseline: the stride {settings['stride']} must divide the patch size "
                    f'{arch.patch_size} and the image size {size} minus it')
  images = np.asarray(
      jax.vmap(lambda x: sampling.resize(x, size, size))(jnp.asarray(collection.images)))
  centers = []

  def describe(batch):
    found = []
    for start in range(0, len(batch), config.features.batch_size):
      out = dino.extract(params,
                         jnp.asarray(batch[start:start + config.features.batch_size]),
                         arch,
                         layer=settings['layer'],
                         facet=settings['facet'],
                         stride=settings['stride'],
                         bin_hierarchy=settings['bin_hierarchy'],
                         query_chunk=config.features.query_chunk)
      found.append(np.asarray(out.descriptors, np.float32))
      centers.append(np.asarray(out.centers))
    return np.concatenate(found)

  descriptors = _oriented(describe, images, collection.flipped)
  settings.update(preset=b.preset, model=extract.vit_model(config))
  return descriptors, centers[0], size, settings


def _vgg_descriptors(config, collection):
  v = config.features.vgg
  centers = []

  def describe(batch):
    found, grid = extract.vgg_layers(batch, config, (v.match_layer,))
    centers.append(grid)
    return found[v.match_layer].astype(np.float32)

  descriptors = _oriented(describe, collection.images, collection.flipped)
  settings = dict(layer=v.match_layer,
                  stride=v.stride,
                  img_size=collection.size,
                  model='vgg16 (ImageNet)')
  return descriptors, centers[0], collection.size, settings


def transfer_fn(config: ml_collections.ConfigDict, collection, descriptors: np.ndarray,
                centers: np.ndarray, size: int):
  """The `baseline.method` transfer as a `metrics.TransferFn` (S-frame points)."""
  scale = (size - 1) / (collection.size - 1)
  descriptors, centers = jnp.asarray(descriptors), jnp.asarray(centers, jnp.float32)
  # Where a prediction may land and which mutual NNs count: the collection's masks, or else
  # the photos themselves (not their squares' edge padding), as for ASIC.
  masks = collection.masks if collection.masks is not None else collection.photo_areas()
  foreground = jnp.asarray(extract.patch_foreground(masks, np.asarray(centers) / scale) >= 0.5)
  if config.baseline.method == 'nn':
    return lambda src, trg, points: np.asarray(
        nearest_patches(descriptors,
                        centers,
                        jnp.asarray(src),
                        jnp.asarray(trg),
                        jnp.asarray(points, jnp.float32) * scale,
                        chunk=config.eval.chunk,
                        allowed=foreground)) / scale
  return lambda src, trg, points: np.asarray(
      _mls_pairs(descriptors, jnp.asarray(foreground), centers, jnp.asarray(src), jnp.asarray(trg),
                 jnp.asarray(points, jnp.float32) * scale, float(config.baseline.mls_alpha))) / scale


def evaluate(config: ml_collections.ConfigDict, collection) -> dict:
  """`baseline.method` over `features.backbone` on `collection` (described as ASIC's run
  orients it, where it has `flipped`), scored by `protocol.score`: the results, with the
  method's name (`<backbone>_<method>`) and settings."""
  method, backbone = config.baseline.method, config.features.backbone
  if method not in METHODS:
    raise UserError(f'config.baseline.method must be one of {METHODS}, got {method!r}')
  if backbone == 'vgg16':
    descriptors, centers, size, settings = _vgg_descriptors(config, collection)
  else:
    descriptors, centers, size, settings = _dino_descriptors(config, collection)
  fn = transfer_fn(config, collection, descriptors, centers, size)
  how = ('the target patch whose descriptor is most cosine-similar to the source point\'s'
         if method == 'nn' else 'the affine moving-least-squares warp (alpha '
         f'{config.baseline.mls_alpha}) of the pair\'s mutual nearest-neighbour patches')
  results = protocol.score(collection, fn, config, f'{how}, within the target\'s mask or photo')
  settings.update(method=method, backbone=backbone, orient=bool(config.features.orient))
  if collection.flipped is not None:
    settings['flipped'] = [n for n, f in zip(collection.names, collection.flipped) if f]
  if method == 'mls':
    settings['mls_alpha'] = config.baseline.mls_alpha
  results.update(method=f'{backbone}_{method}', baseline=settings)
  return results


def label(config: ml_collections.ConfigDict) -> str:
  """The baseline's name in tables and logs: 'DINO+NN', 'VGG-16+MLS', ..."""
  backbone = config.features.backbone
  return f'{extract.VITS.get(backbone, "VGG-16")}+{config.baseline.method.upper()}'
