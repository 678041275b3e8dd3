"""The canonical grid against the released `Canonical.unwarp` (torch reference values)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax.models import canonical
from conftest import load_reference


def _nhwc(x):
  return np.transpose(x, (0, 2, 3, 1))


def _tol(ref):
  """The README's rule for a float32 port against the float64 keys."""
  return dict(rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


def test_sample_grid_with_reduction_matches_released_values_and_gradients():
  ref = load_reference('canonical_unwarp')
  grid = jnp.asarray(_nhwc(ref['grid'])[0])  # [32, 32, 4]
  flow = jnp.asarray(ref['flow'])  # [2, 16, 16, 2]
  cotangent = jnp.asarray(_nhwc(ref['cotangent_res8']))

  def scalar(grid, flow):
    out = canonical.sample_grid(grid, flow, 8)
    return (out * cotangent).sum(), out

  value_and_grads = jax.value_and_grad(scalar, argnums=(0, 1), has_aux=True)
  (_, out), (grad_grid, grad_flow) = value_and_grads(grid, flow)
  assert out.shape == (2, 8, 8, 4)
  np.testing.assert_allclose(out, _nhwc(ref['out_res8_f64']), **_tol(ref['out_res8_f64']))
  np.testing.assert_allclose(grad_grid,
                             _nhwc(ref['grad_grid_res8_f64'])[0], **_tol(ref['grad_grid_res8_f64']))
  np.testing.assert_allclose(grad_flow, ref['grad_flow_res8_f64'],
                             **_tol(ref['grad_flow_res8_f64']))


def test_sample_grid_at_flow_size_matches_released_values():
  ref = load_reference('canonical_unwarp')
  out = canonical.sample_grid(jnp.asarray(_nhwc(ref['grid'])[0]), jnp.asarray(ref['flow']), 16)
  assert out.shape == (2, 16, 16, 4)
  np.testing.assert_allclose(out, _nhwc(ref['out_res16_f64']), **_tol(ref['out_res16_f64']))


def test_identity_flow_at_grid_size_returns_the_grid():
  grid = canonical.init_grid(jax.random.key(0), 8, channels=3)
  flow = jnp.stack([jnp.stack(jnp.meshgrid(jnp.linspace(-1, 1, 8), jnp.linspace(-1, 1, 8)), -1)] *
                   2)
  out = canonical.sample_grid(grid, flow, 8)
  np.testing.assert_allclose(out, jnp.stack([grid, grid]), atol=1e-6)


def test_init_grid_is_normal_with_std_one_tenth():
  grid = np.asarray(canonical.init_grid(jax.random.key(0), 64))
  assert grid.shape == (64, 64, 4) and grid.dtype == np.float32
  # 16,384 samples: the standard error of the std is 0.1 / sqrt(2 n) = 5.5e-4.
  np.testing.assert_allclose(grid.std(), 0.1, atol=3e-3)
  np.testing.assert_allclose(grid.mean(), 0.0, atol=3e-3)


@pytest.mark.parametrize('size,shape,message', [
    (6, (1, 16, 16, 2), 'size must divide'),
    (8, (1, 16, 16, 3), 'flow must be'),
])
def test_bad_arguments_are_clear_errors(size, shape, message):
  grid = jnp.zeros((4, 4, 4))
  with pytest.raises(ValueError, match=message):
    canonical.sample_grid(grid, jnp.zeros(shape), size)
