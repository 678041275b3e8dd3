"""The train state, a fresh one from the seed, and its shapes (`abstract_state`: the template a
checkpoint is restored into, without an init)."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from asic_jax.models import asic


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs (the RNG is `fold_in(seed, step)`: nothing to save).

  Attributes:
    step: updates done so far.
    params: `{'align': ..., 'grid': ...}`.
    batch_stats: the U-Net's BatchNorm running statistics.
    opt_state: Adam's state over `params`.
    bad_step: the first step whose loss was non-finite (-1: none). The update of
      that step and of every later one is skipped, so the state stays the last
      good one; the host reads this at log and checkpoint cadence, not per step.
    bad_term: index in `objective.TERMS` of its first non-finite term.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  bad_step: jax.Array
  bad_term: jax.Array


def init_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
               image_size: int) -> TrainState:
  """A fresh state from `config.seed` (host-side; replicate before use)."""
  model = asic.make_model(config)
  # One compiled init (eagerly, each of the ~40 initialisers compiles on its own),
  # from an 'rbg' key: threefry's hash, unrolled in 40 initialisers, takes ~4x
  # longer to compile on CPU. The step's own randomness stays threefry.
  init = jax.jit(lambda key: model.init(key, jnp.zeros(
      (1, image_size, image_size, 3)), train=False))
  variables = init(jax.random.key(config.seed, impl='rbg'))
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32),
                    params=params,
                    batch_stats=variables['batch_stats'],
                    opt_state=tx.init(params),
                    bad_step=jnp.full((), -1, jnp.int32),
                    bad_term=jnp.full((), -1, jnp.int32))


def abstract_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
                   image_size: int) -> TrainState:
  """`init_state`'s shapes and dtypes (`jax.ShapeDtypeStruct` leaves), computed without
  running the initialisers: what a checkpoint is restored into."""
  return jax.eval_shape(lambda: init_state(config, tx, image_size))
