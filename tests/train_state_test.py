"""The train state: a fresh one from the seed, and its shapes without running an init."""

import jax
import numpy as np

from asic_jax import optim
from asic_jax import train_state
from conftest import load_config


def test_abstract_state_has_the_shapes_of_a_real_init(monkeypatch):
  config = load_config('tiny')
  tx = optim.make_optimizer(config)
  real = train_state.init_state(config, tx, config.data.img_size)
  abstract = train_state.abstract_state(config, tx, config.data.img_size)
  assert jax.tree.structure(real) == jax.tree.structure(abstract)
  for x, y in zip(jax.tree.leaves(real), jax.tree.leaves(abstract)):
    assert isinstance(y, jax.ShapeDtypeStruct) and (x.shape, x.dtype) == (y.shape, y.dtype)
  assert int(real.bad_step) == -1 and np.all(np.asarray(real.params['align']['head']['kernel']) == 0)
