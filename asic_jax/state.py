"""The train state, the model a config describes, and a fresh state from the seed."""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from asic_jax import parallel
from asic_jax.errors import UserError
from asic_jax.models import unet
from asic_jax.models.asic import Asic


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


def make_model(config: ml_collections.ConfigDict,
               *,
               bn_axis_name: str | None = parallel.AXIS) -> Asic:
  if config.dtype not in ('float32', 'bfloat16'):
    raise UserError(f"config.dtype must be 'float32' or 'bfloat16', got {config.dtype!r}")
  return Asic(channel_multiplier=config.model.channel_multiplier,
              grid_size=config.model.grid_size,
              dtype=jnp.dtype(config.dtype),
              bn_axis_name=bn_axis_name)


def init_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
               image_size: int) -> TrainState:
  """A fresh state from `config.seed` (host-side; replicate before use)."""
  model = make_model(config, bn_axis_name=None)
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


@functools.lru_cache(maxsize=8)
def _flow_functions(channel_multiplier: float, grid_size: int, dtype: str):
  """Jitted (one batch, statistics of a chunk, fixed statistics) flow functions of a model:
  built once per model shape, so figures every few steps do not recompile."""
  model = Asic(channel_multiplier=channel_multiplier,
               grid_size=grid_size,
               dtype=jnp.dtype(dtype),
               bn_axis_name=None)
  one_batch = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats'])[0])
  # From zero running averages, one training-mode call leaves (1 - momentum) x the chunk's
  # mean and (biased) variance in them.
  weight = 1.0 - unet.BN_MOMENTUM
  stats_of = jax.jit(lambda v, x: jax.tree.map(
      lambda s: s / weight,
      model.apply(v, x, train=True, mutable=['batch_stats'])[1]['batch_stats']))
  fixed = jax.jit(lambda v, x: model.apply(v, x, train=False))
  return one_batch, stats_of, fixed


def collection_flows(config: ml_collections.ConfigDict,
                     state: TrainState,
                     images: np.ndarray,
                     *,
                     chunk: int | None = None) -> jax.Array:
  """Flows `[N, S, S, 2]` of every image, BatchNorm with the whole collection's statistics.

  The released evaluation runs the collection as one batch in training mode. We do the
  same when N <= `chunk` (`eval.bn_chunk`). A larger collection takes two passes
  ("precise BatchNorm"): the statistics of every BatchNorm layer are averaged over chunks
  of images (each chunk normalised by its own statistics on the way), then every chunk is
  run with those fixed statistics. The first layer's statistics are then exact; deeper
  layers' are close to the one-batch values, with no memory limit on N.
  """
  one_batch, stats_of, fixed = _flow_functions(float(config.model.channel_multiplier),
                                               int(config.model.grid_size), str(config.dtype))
  chunk = chunk or config.eval.bn_chunk
  n = len(images)
  if n <= chunk:
    return one_batch({
        'params': state.params,
        'batch_stats': state.batch_stats
    }, jnp.asarray(images))
  zeros = {'params': state.params, 'batch_stats': jax.tree.map(jnp.zeros_like, state.batch_stats)}
  starts = range(0, n, chunk)
  sums = None
  for start in starts:
    x = jnp.asarray(images[start:start + chunk])
    stats = stats_of(zeros, x)
    # Per layer: sum of size * mean and of size * (var + mean^2), so chunks of any size mix.
    moments = {
        name:
            jax.tree.map(lambda mean, var: (len(x) * mean, len(x) * (var + mean**2)), layer['mean'],
                         layer['var']) for name, layer in _bn_layers(stats)
    }
    sums = moments if sums is None else jax.tree.map(jnp.add, sums, moments)
  flat = {}
  for name, (first, second) in sums.items():
    mean = first / n
    flat[name] = {'mean': mean, 'var': jnp.maximum(second / n - mean**2, 0.0)}
  variables = {'params': state.params, 'batch_stats': _rebuild(state.batch_stats, flat)}
  return jnp.concatenate([fixed(variables, jnp.asarray(images[s:s + chunk])) for s in starts])


def _bn_layers(stats: Any):
  """(path, {'mean', 'var'}) of every BatchNorm layer in a batch_stats tree."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(stats), sep='/')
  layers = {}
  for path, value in flat.items():
    layer, field = path.rsplit('/', 1)
    layers.setdefault(layer, {})[field] = value
  return sorted(layers.items())


def _rebuild(template: Any, layers: dict) -> Any:
  """A batch_stats tree shaped like `template` from {layer path: {'mean', 'var'}}."""
  flat = {
      f'{layer}/{field}': value for layer, fields in layers.items()
      for field, value in fields.items()
  }
  return flax.traverse_util.unflatten_dict(flat, sep='/')
