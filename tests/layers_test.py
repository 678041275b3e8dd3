"""Tests of asic_jax.models.layers against Flax's own layers: the same parameters (names, shapes,
initial values) and the same outputs and gradients, on both sides of the im2col switch."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax.models import layers


def _same_params_and_outputs(ours, theirs, x, atol=1e-5):
  key = jax.random.key(0)
  params = ours.init(key, x)
  reference = theirs.init(key, x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, reference)
  jax.tree.map(np.testing.assert_array_equal, params, reference)  # the same initial values
  np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), atol=atol)
  loss = lambda module: lambda p: jnp.sum(jnp.sin(module.apply(p, x)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=atol),
               jax.grad(loss(ours))(params),
               jax.grad(loss(theirs))(params))


@pytest.mark.parametrize('side', [4, 8, 12])  # 16 and 64 pixels: im2col; 144: XLA's conv
def test_conv3x3_is_flax_conv(side):
  x = jax.random.normal(jax.random.key(1), (2, side, side, 5))
  assert (side * side <= layers.IM2COL_MAX_PIXELS) == (side < 12)
  _same_params_and_outputs(layers.Conv3x3(7), nn.Conv(7, (3, 3), padding=1), x)
  _same_params_and_outputs(layers.Conv3x3(3, use_bias=False),
                           nn.Conv(3, (3, 3), padding=1, use_bias=False), x)


def test_upconv2x2_is_flax_conv_transpose():
  x = jax.random.normal(jax.random.key(2), (2, 3, 4, 6))
  flax_layer = nn.ConvTranspose(5, (2, 2), strides=(2, 2), padding='VALID', transpose_kernel=True)
  _same_params_and_outputs(layers.UpConv2x2(5), flax_layer, x)
  assert layers.UpConv2x2(5).apply(layers.UpConv2x2(5).init(jax.random.key(0), x),
                                   x).shape == (2, 6, 8, 5)


def test_max_pool_is_flax_max_pool_and_shares_the_gradient_of_ties():
  x = jax.random.normal(jax.random.key(3), (1, 5, 6, 2))  # an odd row is dropped
  np.testing.assert_array_equal(layers.max_pool_2x2(x),
                                nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID'))
  tie = jnp.zeros((1, 2, 2, 1))
  grad = jax.grad(lambda t: jnp.sum(layers.max_pool_2x2(t)))(tie)
  assert float(grad.sum()) == pytest.approx(1.0)  # shared among the four tied maxima
  assert np.all(np.asarray(grad) >= 0)
