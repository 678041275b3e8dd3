"""The six ASIC loss terms (DESIGN §3), as pure functions of arrays.

The caller runs the networks; every term here takes their outputs, returns its
weighted scalar, and returns `jnp.zeros(())` without computing anything when its
(static, Python float) `weight` is 0. `form` picks the paper's version (default)
or the released code's (`'released'`, the preset of that name).

Data parallelism: inside `shard_map` / `pmap` over `axis_name`, every
normaliser is global (the numerator and the count are each `psum`ed before
dividing), so a term's value equals the single-device value on the
concatenated batch. Every normaliser is `max(count, 1)`. Arithmetic is at least
float32 (bfloat16 inputs are promoted), since the sums run over millions of
elements.

Frames: flows are `[B, H, W, 2]`, (x, y) in the corner-aligned [-1, 1] frame of
`asic_jax.ops.sampling`; matches are in pixels of the H x W frame.
"""

from typing import Callable, Literal

import jax
from jax import lax
import jax.numpy as jnp
import optax

from asic_jax.ops import sampling

Form = Literal['paper', 'released']
FORMS = ('paper', 'released')

# `nn.PairwiseDistance`'s eps, added to the difference before the norm.
_PAIRWISE_EPS = 1e-6


def _check_form(form: str) -> None:
  if form not in FORMS:
    raise ValueError(f"form must be 'paper' or 'released', got {form!r}")


def _check_shapes(**specs: tuple[jax.Array, str]) -> None:
  """Raises a ValueError naming the first argument whose shape breaks its spec.

  Args:
    **specs: argument name -> (array, spec); a spec lists the dims, e.g.
      'B H W 2': letters must agree across the arguments, digits are sizes.
  """
  sizes = {}
  for name, (array, spec) in specs.items():
    dims = spec.split()
    shape = jnp.shape(array)
    ok = len(shape) == len(dims)
    for dim, size in zip(dims, shape):
      ok &= (int(dim) if dim.isdigit() else sizes.setdefault(dim, size)) == size
    if not ok:
      raise ValueError(f'{name} must have shape [{", ".join(dims)}], got {shape}')


def _f32(x: jax.Array) -> jax.Array:
  """`x` as a float of at least 32 bits (bfloat16 is promoted, float64 kept)."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _psum(x, axis_name: str | None):
  return x if axis_name is None else lax.psum(x, axis_name)


def _global_mean(total: jax.Array, count, axis_name: str | None) -> jax.Array:
  """`total / max(count, 1)`, both summed over `axis_name` first when given."""
  total, count = _psum((total, _f32(count)), axis_name)
  return total / jnp.maximum(count, 1.0)


def _diagonal_cross_entropy(logits: jax.Array, valid: jax.Array, axis: int) -> jax.Array:
  """Cross-entropy of `[P, K, K]` logits whose correct class is the diagonal.

  Args:
    logits: `[P, K, K]`, `[p, i, j]` compares source match i with target match j.
    valid: `[P, K]`, False for padded matches: excluded from every softmax.
    axis: the class axis, 2 (a softmax over targets j for each source i) or 1
      (over sources i for each target j).

  Returns:
    `[P, K]`, the loss of each row i (axis 2) or column j (axis 1); entries of
    padded matches are meaningless and must be masked by the caller.
  """
  # A finite floor instead of -inf keeps all-padded rows free of NaN gradients.
  masked = jnp.where(jnp.expand_dims(valid, 3 - axis), logits, jnp.finfo(logits.dtype).min)
  return jax.nn.logsumexp(masked, axis=axis) - jnp.diagonal(logits, axis1=1, axis2=2)


def kp_loss(src_flow: jax.Array,
            trg_flow: jax.Array,
            matches: jax.Array,
            *,
            weight: float,
            form: Form = 'paper',
            temperature: float = 1.0,
            axis_name: str | None = None) -> jax.Array:
  """Sparse pseudo-correspondence loss (paper Eq. 1), weighted.

  a_i, b_j are the canonical points of the i-th source and j-th target match
  (the flows sampled bilinearly, zeros padding). Padded matches are excluded
  from every softmax (DESIGN §8.1; the released code keeps them as negatives)
  and from the count. A match with similarity <= 0 counts as padding, like
  the released code's `vis = sim > 0`.

  * 'paper': logits -||a_i - b_j||^2 / tau; for each source i a softmax over
    targets j with class j = i; the mean over valid i (Eq. 1 sums over i; the
    mean keeps the weight independent of the number of matches).
  * 'released': logits -||a_i - sg(b_j) + eps|| / tau and the mirrored
    -||sg(a_i) - b_j + eps|| / tau (not squared; eps = 1e-6 added to the
    difference as `nn.PairwiseDistance`); for each target j a softmax over
    sources i with class i = j; the two cross-entropies summed, divided by the
    number of valid matches.

  Args:
    src_flow: `[P, H, W, 2]`, the flows of the P source images.
    trg_flow: `[P, H, W, 2]`, the flows of the P target images.
    matches: `[P, K, 5]`, (x_a, y_a, x_b, y_b, similarity); (x_a, y_a) in
      pixels of the source's H x W frame, (x_b, y_b) of the target's;
      similarity 0 marks padding.
    weight: the term's weight; 0 skips it.
    form: 'paper' or 'released'.
    temperature: tau.
    axis_name: the data-parallel axis, for global normalisers.

  Returns:
    `[]`, weight times the loss.
  """
  if weight == 0:
    return jnp.zeros(())
  _check_form(form)
  _check_shapes(src_flow=(src_flow, 'P H W 2'),
                trg_flow=(trg_flow, 'P H W 2'),
                matches=(matches, 'P K 5'))
  height, width = src_flow.shape[1:3]
  matches = _f32(matches)
  sample = jax.vmap(lambda flow, points: sampling.grid_sample(_f32(flow), points, 'zeros'))
  a = sample(src_flow, sampling.pixel_to_normalized(matches[..., 0:2], (width, height)))
  b = sample(trg_flow, sampling.pixel_to_normalized(matches[..., 2:4], (width, height)))
  valid = matches[..., 4] > 0

  def differences(x, y):  # [P, K, 2] x [P, K, 2] -> [P, K, K, 2], [p, i, j] = x_i - y_j
    return x[:, :, None, :] - y[:, None, :, :]

  if form == 'paper':
    logits = -jnp.sum(differences(a, b)**2, axis=-1) / temperature
    per_match = _diagonal_cross_entropy(logits, valid, axis=2)
  else:

    def logits(x, y):
      return -jnp.linalg.norm(differences(x, y) + _PAIRWISE_EPS, axis=-1) / temperature

    per_match = (_diagonal_cross_entropy(logits(a, lax.stop_gradient(b)), valid, axis=1) +
                 _diagonal_cross_entropy(logits(lax.stop_gradient(a), b), valid, axis=1))
  total = jnp.sum(jnp.where(valid, per_match, 0.0))
  return weight * _global_mean(total, jnp.sum(valid), axis_name)


def equivariance_loss(flow_of_warped: jax.Array,
                      warped_flow: jax.Array,
                      visibility: jax.Array,
                      *,
                      weight: float,
                      form: Form = 'paper',
                      axis_name: str | None = None) -> jax.Array:
  """Equivariance to a warp T (paper Eq. 2), weighted.

  * 'paper': the mean over all B*H*W*2 elements of
    |Phi(T(I)) - sg(T(Phi(I)))| * visibility.
  * 'released': the released `train.py`'s
    |Phi(T(I)) - sg(T(Phi(I)))| + |T(Phi(I)) - Phi(T(I))|, the same masked mean,
    where T(Phi(I)) comes from `Augmentor.forward_tps`, decorated `torch.no_grad()`,
    and Phi(T(I)) is detached in the second term: that term has no gradient at all.
    So its value is twice the paper's and its gradient is the paper's.

  Args:
    flow_of_warped: `[B, H, W, 2]`, Phi(T(I)), (x, y) in [-1, 1].
    warped_flow: `[B, H, W, 2]`, T(Phi(I)), (x, y) in [-1, 1].
    visibility: `[B, H, W]`, (T(mask) > 0.5) * mask, built by the caller.
    weight: the term's weight; 0 skips it.
    form: 'paper' or 'released'.
    axis_name: the data-parallel axis, for global normalisers.

  Returns:
    `[]`, weight times the loss.
  """
  if weight == 0:
    return jnp.zeros(())
  _check_form(form)
  _check_shapes(flow_of_warped=(flow_of_warped, 'B H W 2'),
                warped_flow=(warped_flow, 'B H W 2'),
                visibility=(visibility, 'B H W'))
  flow_of_warped, warped_flow = _f32(flow_of_warped), _f32(warped_flow)
  error = jnp.abs(flow_of_warped - lax.stop_gradient(warped_flow))
  if form == 'released':  # the second, gradient-free L1 term: the value doubles
    error = error + lax.stop_gradient(error)
  total = jnp.sum(error * _f32(visibility)[..., None])
  return weight * _global_mean(total, error.size, axis_name)


def tv_loss(residual_flow: jax.Array, *, weight: float, axis_name: str | None = None) -> jax.Array:
  """Total variation of the residual flow (paper Eq. 3), weighted.

  Huber (delta 1) of the forward differences along y and along x, each the mean
  over all its elements (both channels), the two means summed: the released
  `total_variation_loss`.

  Args:
    residual_flow: `[B, H, W, 2]`, flow - identity.
    weight: the term's weight; 0 skips it.
    axis_name: the data-parallel axis, for global normalisers.

  Returns:
    `[]`, weight times the loss.
  """
  if weight == 0:
    return jnp.zeros(())
  _check_shapes(residual_flow=(residual_flow, 'B H W 2'))
  residual = _f32(residual_flow)
  loss = jnp.zeros(())
  for diff in (residual[:, 1:] - residual[:, :-1], residual[:, :, 1:] - residual[:, :, :-1]):
    loss += _global_mean(jnp.sum(optax.huber_loss(diff, delta=1.0)), diff.size, axis_name)
  return weight * loss


def recon_loss(recon_rgb: jax.Array,
               images: jax.Array,
               masks: jax.Array,
               *,
               weight: float,
               perceptual: Callable[..., jax.Array],
               perceptual_params,
               axis_name: str | None = None) -> jax.Array:
  """Perceptual reconstruction loss (paper Eq. 4, first term), weighted.

  Both images are multiplied by the mask, then `perceptual` gives one distance
  per image, averaged over the images. The caller stacks the original and the
  TPS-warped copies, so this plain mean is the paper's average of the two.

  Args:
    recon_rgb: `[B, h, w, 3]` in [-1, 1], the canonical grid sampled by the flow.
    images: `[B, h, w, 3]` in [-1, 1], already resized to h x w.
    masks: `[B, h, w]`, soft foreground masks at h x w.
    weight: the term's weight; 0 skips it.
    perceptual: `fn(params, x, y) -> [B]` from `models.perceptual.load_perceptual`.
    perceptual_params: its (frozen) parameters.
    axis_name: the data-parallel axis, for global normalisers.

  Returns:
    `[]`, weight times the loss.
  """
  if weight == 0:
    return jnp.zeros(())
  _check_shapes(recon_rgb=(recon_rgb, 'B h w 3'),
                images=(images, 'B h w 3'),
                masks=(masks, 'B h w'))
  masks = masks[..., None]
  distances = perceptual(perceptual_params, recon_rgb * masks, images * masks)
  return weight * _global_mean(jnp.sum(_f32(distances)), distances.shape[0], axis_name)


def mask_loss(recon_alpha: jax.Array,
              masks: jax.Array,
              *,
              weight: float,
              axis_name: str | None = None) -> jax.Array:
  """Mask reconstruction loss (paper Eq. 4, second term), weighted.

  Binary cross-entropy with logits, the mean over all elements.

  Args:
    recon_alpha: `[B, h, w]`, logits: the grid's 4th channel sampled by the flow.
    masks: `[B, h, w]`, soft foreground masks in [0, 1].
    weight: the term's weight; 0 skips it.
    axis_name: the data-parallel axis, for global normalisers.

  Returns:
    `[]`, weight times the loss.
  """
  if weight == 0:
    return jnp.zeros(())
  _check_shapes(recon_alpha=(recon_alpha, 'B h w'), masks=(masks, 'B h w'))
  losses = optax.sigmoid_binary_cross_entropy(_f32(recon_alpha), _f32(masks))
  return weight * _global_mean(jnp.sum(losses), losses.size, axis_name)


def parts_loss(flow: jax.Array,
               parts: jax.Array,
               masks: jax.Array,
               *,
               weight: float,
               num_parts: int,
               form: Form = 'paper',
               axis_name: str | None = None) -> jax.Array:
  """Part compactness in the canonical space (paper Eq. 5), weighted.

  Centroids and counts are over the whole global batch and stop-gradient.

  * 'paper': the sum over foreground parts s of
    (1/N_s) sum_i ||c_i^s - sg(E[c^s])||^2; parts absent from the batch add 0.
    Foreground is the part labels; `masks` is not used.
  * 'released': centroids of every label including background (its
    `index_add_`); the mean over all B*H*W*2 elements of
    |c - sg(centroid of its label)| * mask.

  Args:
    flow: `[B, H, W, 2]`, (x, y) in [-1, 1].
    parts: `[B, H, W]` integers in 0..num_parts (num_parts is background).
    masks: `[B, H, W]`, foreground masks (the 'released' form's weights).
    weight: the term's weight; 0 skips it.
    num_parts: the number of foreground parts S.
    form: 'paper' or 'released'.
    axis_name: the data-parallel axis, for global normalisers.

  Returns:
    `[]`, weight times the loss.
  """
  if weight == 0:
    return jnp.zeros(())
  _check_form(form)
  _check_shapes(flow=(flow, 'B H W 2'), parts=(parts, 'B H W'), masks=(masks, 'B H W'))
  if not jnp.issubdtype(jnp.asarray(parts).dtype, jnp.integer):
    raise ValueError(f'parts must hold integer labels, got dtype {jnp.asarray(parts).dtype}')
  flow = _f32(flow)
  labels = parts.reshape(-1)
  coords = flow.reshape(-1, 2)

  def per_label_sum(values):
    return _psum(jax.ops.segment_sum(values, labels, num_segments=num_parts + 1), axis_name)

  counts = jnp.maximum(per_label_sum(jnp.ones_like(labels, jnp.float32)), 1.0)
  centroids = lax.stop_gradient(per_label_sum(coords) / counts[:, None])
  offsets = coords - centroids[labels]
  if form == 'paper':
    spreads = per_label_sum(jnp.sum(offsets**2, axis=-1)) / counts
    return weight * jnp.sum(spreads[:num_parts])
  error = jnp.abs(offsets) * _f32(masks).reshape(-1, 1)
  return weight * _global_mean(jnp.sum(error), error.size, axis_name)
