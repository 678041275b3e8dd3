"""Asic: the flow at initialisation, the variable tree, synchronised BatchNorm, bfloat16."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from asic_jax.models import canonical
from asic_jax.models.asic import Asic
from asic_jax.ops import sampling

# U-Net widths 4 ... 64 and an 8 px grid: the real structure at a tiny cost.
_TINY = dict(channel_multiplier=1 / 16, grid_size=8)


@functools.cache
def _initial_variables():
  """`Asic(**_TINY)` initialised for 32 px images (an 'rbg' key: XLA:CPU compiles threefry
  for ~40 initialisers in ~30 s, rbg in ~4 s)."""
  init = jax.jit(functools.partial(Asic(**_TINY).init, train=False))
  return init(jax.random.key(0, impl='rbg'), jnp.zeros((1, 32, 32, 3)))


def _perturbed_variables():
  """Initial variables with every parameter perturbed, so the head is non-zero."""
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda a: a + 0.05 * rng.normal(size=a.shape).astype(np.float32),
                        jax.device_get(_initial_variables()['params']))
  return {'params': params, 'batch_stats': _initial_variables()['batch_stats']}


def _images(batch, side=32, seed=1):
  return np.random.default_rng(seed).uniform(-1, 1, (batch, side, side, 3)).astype(np.float32)


def _identity(side):
  xs = np.linspace(-1, 1, side, dtype=np.float32)
  return np.stack(np.meshgrid(xs, xs), -1)  # [y, x] -> (x, y)


def test_variable_tree_is_align_and_grid():
  variables = _initial_variables()
  assert set(variables) == {'params', 'batch_stats'}
  assert set(variables['params']) == {'align', 'grid'}
  assert set(variables['batch_stats']) == {'align'}
  assert variables['params']['grid'].shape == (8, 8, 4)
  assert variables['params']['grid'].dtype == jnp.float32
  assert 'head' in variables['params']['align']


@pytest.mark.parametrize('train', [True, False])
def test_flow_is_exactly_the_identity_at_initialisation(train):
  model = Asic(**_TINY)
  flow, _ = model.apply(_initial_variables(), _images(2), train=train, mutable=['batch_stats'])
  assert flow.shape == (2, 32, 32, 2) and flow.dtype == jnp.float32
  # Exactly identity_grid (+ 0 from the zero head), which is numpy's identity to rounding.
  identity = sampling.identity_grid(32, 32)
  np.testing.assert_array_equal(flow, jnp.broadcast_to(identity, flow.shape))
  np.testing.assert_allclose(flow[1], _identity(32), atol=1e-7)


def test_reconstruct_samples_the_own_grid():
  model = Asic(**_TINY)
  variables = _perturbed_variables()
  grid = variables['params']['grid']
  flow = model.apply(variables, _images(2), train=True, mutable=['batch_stats'])[0]
  np.testing.assert_array_equal(model.apply(variables, flow, 16, method=Asic.reconstruct),
                                canonical.sample_grid(grid, flow, 16))
  # The identity flow at the grid's own size reads the grid back.
  identity = jnp.asarray(_identity(8))[None]
  read_back = model.apply(variables, identity, 8, method=Asic.reconstruct)[0]
  np.testing.assert_allclose(read_back, grid, atol=1e-6)


def test_synchronised_batch_norm_in_shard_map_equals_one_device_on_the_global_batch():
  mesh = jax.make_mesh((2,), ('data',))  # Explicit axes: inputs must carry their sharding
  variables = jax.device_put(_perturbed_variables(), NamedSharding(mesh, P()))
  images = jax.device_put(_images(4), NamedSharding(mesh, P('data')))

  def per_device(model, variables, images):
    flow, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
    return flow, updates['batch_stats']

  synced = jax.jit(
      jax.shard_map(functools.partial(per_device, Asic(**_TINY, bn_axis_name='data')),
                    mesh=mesh,
                    in_specs=(P(), P('data')),
                    out_specs=(P('data'), P())))
  flow, stats = synced(variables, images)
  single = jax.jit(functools.partial(per_device, Asic(**_TINY)))
  expected_flow, expected_stats = single(variables, images)

  residual = np.abs(expected_flow - _identity(32)).max()
  assert residual > 0.01  # the head is live, so the comparison is not identity == identity
  np.testing.assert_allclose(flow, expected_flow, rtol=1e-5, atol=1e-5 * residual)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), stats,
               expected_stats)

  # Per-device statistics (no axis name) give a different flow: the check has teeth.
  local = jax.jit(
      jax.shard_map(lambda v, x: per_device(Asic(**_TINY), v, x)[0],
                    mesh=mesh,
                    in_specs=(P(), P('data')),
                    out_specs=P('data')))
  assert np.abs(local(variables, images) - expected_flow).max() > 10 * 1e-5 * residual


def test_bfloat16_compute_stays_close_to_float32():
  variables = _perturbed_variables()
  images = _images(2)
  flows = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    model = Asic(**_TINY, dtype=dtype)
    flows[dtype], _ = model.apply(variables, images, train=True, mutable=['batch_stats'])
  assert flows[jnp.bfloat16].dtype == jnp.float32
  residual = np.abs(flows[jnp.float32] - _identity(32)).max()
  assert residual > 0.01
  error = np.abs(flows[jnp.bfloat16] - flows[jnp.float32]).max()
  # bfloat16 keeps 8 significant bits (relative rounding 2^-9 per op); a few percent of
  # the residual after ~20 layers.
  assert 0 < error < 0.05 * residual


def test_images_must_have_three_channels():
  with pytest.raises(ValueError, match=r'images must be \[B, H, W, 3\]'):
    Asic(**_TINY).apply(_initial_variables(), jnp.zeros((1, 32, 32, 4)), train=False)
