"""Learning-rate schedules of both presets and the one optimizer over {align, grid}."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax import config_lib, optim, validate
from conftest import load_config, load_reference


def test_released_schedule_equals_reference_at_every_stored_step():
  ref = load_reference('lr_schedule')
  config = config_lib.base_config('released')
  schedule = optim.learning_rate(config)
  counts = jnp.arange(len(ref['lr_full']))
  lr = np.asarray(jax.jit(jax.vmap(schedule))(counts), np.float64)
  # lr_full[k] is the rate used by update k + 1, i.e. optax count k.
  np.testing.assert_allclose(lr, ref['lr_full'], rtol=1e-6, atol=1e-14)
  np.testing.assert_allclose(lr[ref['iterations']], ref['lr'], rtol=1e-6, atol=1e-14)
  # The restart: 0.003 -> ~0 at the end of the first period -> 0.9 * 0.003.
  assert lr[9999] < 1e-9 and abs(lr[10000] - 0.0027) < 1e-9


def test_paper_schedule_is_constant():
  schedule = optim.learning_rate(config_lib.base_config(''))
  lr = np.asarray(jax.vmap(schedule)(jnp.arange(0, 20001, 97)))
  np.testing.assert_array_equal(lr, np.float32(1e-3))


def test_one_adam_over_the_whole_tree_uses_the_schedule():
  # Adam's first update is -lr * sign(grad) (m_hat / sqrt(v_hat) = +-1, eps aside).
  params = {'align': {'w': jnp.ones((3,))}, 'grid': jnp.zeros((2, 2, 4))}
  grads = {'align': {'w': jnp.asarray([1.0, -2.0, 3.0])}, 'grid': jnp.full((2, 2, 4), -0.5)}
  for arg, lr in (('', 1e-3), ('released', 3e-3)):
    tx = optim.make_optimizer(config_lib.base_config(arg))
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates['align']['w'], -lr * np.sign([1.0, -2.0, 3.0]), rtol=1e-4)
    np.testing.assert_allclose(updates['grid'], np.full((2, 2, 4), lr), rtol=1e-4)


def test_cosine_decays_from_the_peak_to_zero_over_the_run():
  config = load_config('tiny', **{'optim.schedule': 'cosine', 'optim.lr': 2e-3,
                                  'train.num_steps': 100})
  schedule = optim.learning_rate(config)
  for step in (0, 25, 50, 100):
    assert float(schedule(step)) == pytest.approx(1e-3 * (1 + np.cos(np.pi * step / 100)), abs=1e-9)
