"""The six loss terms against the released code's values and numpy oracles."""

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest
from scipy import ndimage

from asic_jax import losses
from asic_jax.ops import sampling
from conftest import load_reference

# ----------------------------------------------------------------------------
# numpy oracles


def _np_sample(flow, points):
  """Bilinear, zeros padding, at pixel (x, y) points: [H, W, 2], [K, 2] -> [K, 2]."""
  return np.stack([
      ndimage.map_coordinates(
          flow[..., c], [points[:, 1], points[:, 0]], order=1, mode='grid-constant', cval=0.0)
      for c in range(2)
  ], -1)


def _np_log_softmax(x, keep):
  x = np.where(keep, x, -np.inf)
  top = x.max()
  return x - top - np.log(np.exp(x - top).sum())


def _np_kp_loss(src_flow, trg_flow, matches, form, exclude_padding=True, tau=1.0):
  """Eq. 1 or the released form, one pair and one match at a time."""
  total, count = 0.0, 0
  for src, trg, match in zip(src_flow, trg_flow, matches):
    a = _np_sample(src.astype(np.float64), match[:, 0:2])
    b = _np_sample(trg.astype(np.float64), match[:, 2:4])
    valid = match[:, 4] > 0
    keep = valid if exclude_padding else np.ones_like(valid)
    for i in np.flatnonzero(valid):
      if form == 'paper':
        logits = -np.sum((a[i] - b)**2, axis=-1) / tau  # over targets j
        total -= _np_log_softmax(logits, keep)[i]
      else:
        logits = -np.linalg.norm(a - b[i] + 1e-6, axis=-1) / tau  # over sources, target i
        total -= 2 * _np_log_softmax(logits, keep)[i]
      count += 1
  return total / max(count, 1)


def _np_huber(a):
  a = np.abs(a)
  return np.where(a <= 1, 0.5 * a**2, a - 0.5)


def _np_bce_with_logits(x, z):
  return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def _np_parts(flow, parts, masks, num_parts, form):
  coords = flow.reshape(-1, 2).astype(np.float64)
  labels = parts.reshape(-1)
  weights = masks.reshape(-1)
  centroids = {s: coords[labels == s].mean(0) for s in np.unique(labels)}
  if form == 'paper':
    return sum(
        np.sum((coords[labels == s] - centroids[s])**2) / np.sum(labels == s)
        for s in centroids
        if s < num_parts)
  error = [np.abs(c - centroids[s]) * w for c, s, w in zip(coords, labels, weights)]
  return np.sum(error) / coords.size


# ----------------------------------------------------------------------------
# inputs


def _random_flows(rng, shape, noise=0.1):
  batch, height, width = shape
  identity = np.asarray(sampling.identity_grid(height, width))
  return (identity + noise * rng.normal(size=(batch, height, width, 2))).astype(np.float32)


def _random_matches(rng, pairs, k, size, num_padded=0):
  points = rng.uniform(0, size - 1, size=(pairs, k, 4))
  similarity = rng.uniform(0.2, 1.0, size=(pairs, k, 1))
  matches = np.concatenate([points, similarity], -1).astype(np.float32)
  if num_padded:
    matches[-1, k - num_padded:] = 0.0
  return matches


def _from_kp_reference(name):
  ref = load_reference(name)
  flow = ref['flow']
  half = flow.shape[0] // 2
  matches = np.concatenate([ref['kp1'][..., :2], ref['kp2'][..., :2], ref['kp1'][..., 2:3]], -1)
  return ref, flow, half, matches


# ----------------------------------------------------------------------------
# TV


def test_tv_matches_released_value_and_gradient():
  ref = load_reference('tv_loss')
  delta = ref['delta']
  # The stored share of |diff| > 1 is recomputed here: Huber's linear branch is exercised.
  frac_y = np.mean(np.abs(delta[:, 1:] - delta[:, :-1]) > 1)
  np.testing.assert_allclose(frac_y, ref['frac_absdiff_gt1_y'])
  assert ref['frac_absdiff_gt1_y'] > 0.3 and ref['frac_absdiff_gt1_x'] > 0.3
  value, grad = jax.jit(jax.value_and_grad(lambda d: losses.tv_loss(d, weight=1.0)))(delta)
  np.testing.assert_allclose(value, ref['loss_f64'], rtol=1e-6)
  np.testing.assert_allclose(grad, ref['grad_delta_f64'], rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(losses.tv_loss(delta, weight=9000.0),
                             9000 * ref['loss_f64'],
                             rtol=1e-6)


def test_tv_of_identity_flow_is_zero():
  flow = jnp.broadcast_to(sampling.identity_grid(12, 16), (2, 12, 16, 2))
  residual = flow - sampling.identity_grid(12, 16)
  value, grad = jax.jit(jax.value_and_grad(lambda r: losses.tv_loss(r, weight=9000.0)))(residual)
  assert value == 0.0
  assert not np.any(grad)


# ----------------------------------------------------------------------------
# KP


def test_kp_released_matches_reference_without_padding():
  ref, flow, half, matches = _from_kp_reference('kp_loss_nopad')
  assert np.all(matches[..., 4] > 0)

  def loss(flow):
    return losses.kp_loss(flow[:half],
                          flow[half:],
                          matches,
                          weight=1.0,
                          form='released',
                          temperature=float(ref['temperature']))

  value, grad = jax.jit(jax.value_and_grad(loss))(flow)
  np.testing.assert_allclose(value, ref['loss_f64'], rtol=2e-6)
  np.testing.assert_allclose(grad, ref['grad_flow_f64'], rtol=1e-4, atol=1e-6)


def test_kp_released_oracle_reproduces_padded_reference_and_ours_excludes_padding():
  ref, flow, half, matches = _from_kp_reference('kp_loss')
  assert np.any(matches[..., 4] == 0)
  # The oracle with the released code's padded negatives reproduces its value ...
  np.testing.assert_allclose(_np_kp_loss(flow[:half],
                                         flow[half:],
                                         matches,
                                         'released',
                                         exclude_padding=False),
                             ref['loss_f64'],
                             rtol=1e-6)
  # ... and ours equals the same oracle with padded rows out of the softmax.
  ours = jax.jit(functools.partial(losses.kp_loss, weight=1.0,
                                   form='released'))(flow[:half], flow[half:], matches)
  expected = _np_kp_loss(flow[:half], flow[half:], matches, 'released')
  np.testing.assert_allclose(ours, expected, rtol=1e-5)
  assert abs(expected - ref['loss_f64']) > 1e-2  # the difference is real


def test_kp_paper_matches_numpy_and_ignores_padded_rows():
  rng = np.random.default_rng(1)
  src, trg = _random_flows(rng, (3, 16, 20)), _random_flows(rng, (3, 16, 20))
  matches = _random_matches(rng, 3, 9, 16, num_padded=4)
  value = jax.jit(functools.partial(losses.kp_loss, weight=10.0, temperature=0.5))(src, trg,
                                                                                   matches)
  np.testing.assert_allclose(value,
                             10 * _np_kp_loss(src, trg, matches, 'paper', tau=0.5),
                             rtol=1e-5)
  moved = matches.copy()
  moved[-1, -4:, :4] = rng.uniform(0, 15, size=(4, 4))

  @jax.jit
  def loss_and_grad(m):
    return jax.value_and_grad(lambda s, t: losses.kp_loss(s, t, m, weight=10.0), (0, 1))(src, trg)

  (v0, g0), (v1, g1) = loss_and_grad(matches), loss_and_grad(moved)
  np.testing.assert_allclose(v1, v0, rtol=1e-6)
  np.testing.assert_allclose(g1[0], g0[0], atol=1e-7)
  np.testing.assert_allclose(g1[1], g0[1], atol=1e-7)


@pytest.mark.parametrize('form', ['paper', 'released'])
def test_kp_is_lower_for_true_pairing_than_shuffled(form):
  rng = np.random.default_rng(2)
  flows = _random_flows(rng, (2, 16, 16), noise=0.0)
  points = rng.uniform(0, 15, size=(2, 10, 2))
  true = np.concatenate([points, points, np.ones((2, 10, 1))], -1).astype(np.float32)
  loss = jax.jit(functools.partial(losses.kp_loss, flows, flows, weight=1.0, form=form))
  for _ in range(3):
    shuffled = true.copy()
    shuffled[:, :, 2:4] = true[:, rng.permutation(10), 2:4]
    assert loss(true) + 0.5 < loss(shuffled)


def test_kp_all_padded_is_finite_zero():
  rng = np.random.default_rng(3)
  src, trg = _random_flows(rng, (2, 8, 8)), _random_flows(rng, (2, 8, 8))
  matches = np.zeros((2, 5, 5), np.float32)
  for form in ('paper', 'released'):
    value, grad = jax.jit(
        jax.value_and_grad(lambda s: losses.kp_loss(s, trg, matches, weight=1.0, form=form)))(src)
    assert value == 0.0
    assert np.all(np.isfinite(grad)) and not np.any(grad)


# ----------------------------------------------------------------------------
# Equi, Mask, Parts


@pytest.mark.parametrize('form', ['paper', 'released'])
def test_equivariance_matches_numpy(form):
  rng = np.random.default_rng(4)
  ft, tf = _random_flows(rng, (2, 8, 10)), _random_flows(rng, (2, 8, 10))
  visibility = (rng.uniform(size=(2, 8, 10)) > 0.3).astype(np.float32)
  value, (grad_ft, grad_tf) = jax.jit(
      jax.value_and_grad(
          lambda a, b: losses.equivariance_loss(a, b, visibility, weight=2.0, form=form),
          (0, 1)))(ft, tf)
  sides = 2 if form == 'released' else 1
  expected = sides * np.sum(np.abs(ft - tf) * visibility[..., None]) / ft.size
  np.testing.assert_allclose(value, 2.0 * expected, rtol=1e-5)
  # Gradients: sign(difference) * visibility / count through Phi(T(I)) only, in both forms:
  # the released T(Phi(I)) comes from `Augmentor.forward_tps`, under `torch.no_grad()`, so
  # its second L1 term doubles the value and adds no gradient (issue 12 A1).
  slope = 2.0 * np.sign(ft - tf) * visibility[..., None] / ft.size
  np.testing.assert_allclose(grad_ft, slope, atol=1e-9)
  np.testing.assert_allclose(grad_tf, 0 * slope, atol=1e-9)


def test_mask_matches_numpy():
  rng = np.random.default_rng(5)
  logits = rng.normal(scale=3.0, size=(3, 6, 7)).astype(np.float32)
  masks = rng.uniform(size=(3, 6, 7)).astype(np.float32)
  np.testing.assert_allclose(losses.mask_loss(logits, masks, weight=0.1),
                             0.1 * _np_bce_with_logits(logits, masks).mean(),
                             rtol=1e-5)


def _part_inputs(rng, num_parts=4, absent=(2,)):
  flow = _random_flows(rng, (4, 6, 8), noise=0.3)
  parts = rng.integers(0, num_parts + 1, size=(4, 6, 8))
  for s in absent:
    parts[parts == s] = num_parts
  masks = (parts != num_parts).astype(np.float32)
  return flow, parts.astype(np.int32), masks


@pytest.mark.parametrize('form', ['paper', 'released'])
def test_parts_matches_numpy(form):
  rng = np.random.default_rng(6)
  flow, parts, masks = _part_inputs(rng)
  value = losses.parts_loss(flow, parts, masks, weight=10.0, num_parts=4, form=form)
  np.testing.assert_allclose(value, 10 * _np_parts(flow, parts, masks, 4, form), rtol=1e-5)


def test_parts_paper_gradient_is_centroid_stopped():
  rng = np.random.default_rng(7)
  flow, parts, masks = _part_inputs(rng)
  grad = jax.jit(
      jax.grad(lambda f: losses.parts_loss(f, parts, masks, weight=1.0, num_parts=4)))(flow)
  centroids = {s: flow[parts == s].mean(0) for s in range(4) if np.any(parts == s)}
  expected = np.zeros_like(flow)
  for s, c in centroids.items():
    expected[parts == s] = 2 * (flow[parts == s] - c) / np.sum(parts == s)
  np.testing.assert_allclose(grad, expected, atol=1e-6)


def test_zero_counts_and_zero_weights():
  rng = np.random.default_rng(8)
  flow = _random_flows(rng, (2, 4, 4))
  background = np.full((2, 4, 4), 3, np.int32)
  for form in ('paper', 'released'):
    value, grad = jax.jit(
        jax.value_and_grad(lambda f: losses.parts_loss(
            f, background, np.zeros((2, 4, 4)), weight=1.0, num_parts=3, form=form)))(flow)
    assert value == 0.0 and np.all(np.isfinite(grad))
  assert losses.kp_loss(flow, flow, np.zeros((2, 3, 5)), weight=0.0).shape == ()
  # Weight 0 skips the term entirely, even its shape checks.
  assert losses.tv_loss(np.zeros(3), weight=0.0) == 0.0


def test_bad_shapes_name_the_argument():
  flow = np.zeros((2, 8, 8, 2), np.float32)
  with pytest.raises(ValueError, match='matches'):
    losses.kp_loss(flow, flow, np.zeros((2, 5, 4)), weight=1.0)
  with pytest.raises(ValueError, match='visibility'):
    losses.equivariance_loss(flow, flow, np.zeros((2, 8, 7)), weight=1.0)
  with pytest.raises(ValueError, match='form'):
    losses.parts_loss(flow,
                      np.zeros((2, 8, 8), np.int32),
                      np.zeros((2, 8, 8)),
                      weight=1.0,
                      num_parts=2,
                      form='pape')


# ----------------------------------------------------------------------------
# recon, and every term under shard_map


def _mean_squared(params, x, y):
  """A stand-in perceptual distance: [B, h, w, 3] x 2 -> [B]."""
  return params['scale'] * jnp.mean((x - y)**2, axis=(1, 2, 3))


def test_recon_masks_both_images_and_averages():
  rng = np.random.default_rng(9)
  recon, images = rng.normal(size=(2, 2, 5, 6, 3)).astype(np.float32)
  masks = rng.uniform(size=(2, 5, 6)).astype(np.float32)
  value = losses.recon_loss(recon,
                            images,
                            masks,
                            weight=3.0,
                            perceptual=_mean_squared,
                            perceptual_params={'scale': 2.0})
  per_image = 2.0 * np.mean(((recon - images) * masks[..., None])**2, axis=(1, 2, 3))
  np.testing.assert_allclose(value, 3.0 * per_image.mean(), rtol=1e-5)


def _terms():
  """(name, fn(*sharded args, axis_name), args): every term on a batch of 4 images."""
  rng = np.random.default_rng(10)
  flows = _random_flows(rng, (4, 8, 8))
  other = _random_flows(rng, (4, 8, 8))
  matches = _random_matches(rng, 4, 6, 8, num_padded=3)
  masks = rng.uniform(size=(4, 8, 8)).astype(np.float32)
  _, parts, _ = _part_inputs(rng)
  part_flows = _random_flows(rng, parts.shape, noise=0.3)
  rgb = rng.normal(size=(2, 4, 8, 8, 3)).astype(np.float32)
  terms = []
  for form in ('paper', 'released'):
    terms += [
        (f'kp_{form}', functools.partial(losses.kp_loss, weight=10.0,
                                         form=form), (flows, other, matches)),
        (f'equi_{form}', functools.partial(losses.equivariance_loss, weight=1.0,
                                           form=form), (flows, other, masks)),
        (f'parts_{form}', functools.partial(losses.parts_loss, weight=10.0, num_parts=4, form=form),
         (part_flows, parts, (parts != 4).astype(np.float32))),
    ]
  terms += [
      ('tv', functools.partial(losses.tv_loss, weight=9000.0), (flows - other,)),
      ('mask', functools.partial(losses.mask_loss, weight=1.0), (flows[..., 0], masks)),
      ('recon',
       functools.partial(losses.recon_loss,
                         weight=1.0,
                         perceptual=_mean_squared,
                         perceptual_params={'scale': 2.0}), (rgb[0], rgb[1], masks)),
  ]
  return terms


@pytest.mark.parametrize('name,term,args', _terms(), ids=[t[0] for t in _terms()])
def test_shard_map_over_two_devices_equals_single_device(name, term, args):
  del name
  mesh = jax.make_mesh((2,), ('data',))
  sharded = jax.jit(
      jax.shard_map(functools.partial(term, axis_name='data'),
                    mesh=mesh,
                    in_specs=P('data'),
                    out_specs=P()))
  batch_split = jax.device_put(args, jax.sharding.NamedSharding(mesh, P('data')))
  np.testing.assert_allclose(sharded(*batch_split), term(*args), rtol=2e-6, atol=1e-7)


def test_parts_on_all_background_maps_is_idle_in_paper_form_and_active_in_released_form():
  """Without a foreground (`features.masks='none'`) every pixel is background. Eq. 5 sums over
  foreground parts only: the paper form is 0 with no gradient. The released form, as the
  released code's `index_add_` over every label, pulls all pixels (mask 1) toward their mean:
  its value is the mean |c - mean c| and its gradient is not 0."""
  flow = jax.random.uniform(jax.random.key(0), (2, 4, 4, 2), minval=-1, maxval=1)
  parts = jnp.full((2, 4, 4), 3, jnp.int32)  # num_parts = 3: label 3 is background
  masks = jnp.ones((2, 4, 4))
  loss = lambda f, form: losses.parts_loss(f, parts, masks, weight=1.0, num_parts=3, form=form)
  assert float(loss(flow, 'paper')) == 0.0
  assert float(jnp.abs(jax.grad(loss)(flow, 'paper')).max()) == 0.0
  expected = np.mean(np.abs(np.asarray(flow) - np.asarray(flow).reshape(-1, 2).mean(0)))
  np.testing.assert_allclose(float(loss(flow, 'released')), expected, rtol=1e-6)
  assert float(jnp.abs(jax.grad(loss)(flow, 'released')).max()) > 0
