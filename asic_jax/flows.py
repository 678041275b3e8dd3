"""Collection-wide inference: the flow of every image with the collection's BatchNorm
statistics, in one batch or two passes. Training (its final evaluation and figures), `mode=eval`,
`mode=visualize` and the Python API share it.

Frames: images `[N, S, S, 3]` in [-1, 1]; flows `[N, S, S, 2]` (x, y) canonical coordinates
in [-1, 1] (`asic_jax.ops.sampling`), in each photo's own pixels. `flipped [N]` (the
collection's orientation, `asic_jax.ops.flip`) marks the images the network sees mirrored;
None: none.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asic_jax import parallel
from asic_jax.models import asic, unet
from asic_jax.ops import flip


@functools.lru_cache(maxsize=8)
def _flow_functions(model: asic.Asic):
  """Jitted (one batch, statistics of a chunk, fixed statistics) flow functions of a model:
  built once per model (a Flax module compares and hashes by its fields), so figures every few
  steps do not recompile."""
  jit = functools.partial(jax.jit, compiler_options=parallel.compiler_options())
  # The network sees each flipped image mirrored; its flow is mirrored back onto the photo.
  one_batch = jit(lambda v, x, f: flip.mirror(
      model.apply(v, flip.mirror(x, f), train=True, mutable=['batch_stats'])[0], f))
  # From zero running averages, one training-mode call leaves (1 - momentum) x the chunk's
  # mean and (biased) variance in them.
  weight = 1.0 - unet.BN_MOMENTUM
  stats_of = jit(lambda v, x, f: jax.tree.map(
      lambda s: s / weight,
      model.apply(v, flip.mirror(x, f), train=True, mutable=['batch_stats'])[1]['batch_stats']))
  fixed = jit(lambda v, x, f: flip.mirror(model.apply(v, flip.mirror(x, f), train=False), f))
  return one_batch, stats_of, fixed


def _flags(flipped, n: int) -> jax.Array:
  """`[n]` bool orientation flags (all False for None)."""
  return jnp.zeros(n, bool) if flipped is None else jnp.asarray(flipped, bool)


def collection_flows(config: ml_collections.ConfigDict,
                     state: Any,
                     images: np.ndarray,
                     *,
                     flipped: np.ndarray | None = None,
                     chunk: int | None = None) -> jax.Array:
  """Flows `[N, S, S, 2]` of every image, BatchNorm with the whole collection's statistics.

  The released evaluation runs the collection as one batch in training mode. We do the
  same when N <= `chunk` (`eval.bn_chunk`). A larger collection takes two passes
  ("precise BatchNorm"): the statistics of every BatchNorm layer are averaged over chunks
  of images (each chunk normalised by its own statistics on the way), then every chunk is
  run with those fixed statistics. The first layer's statistics are then exact; deeper
  layers' are close to the one-batch values, with no memory limit on N.
  """
  one_batch, _, _ = _functions(config)
  chunk = chunk or config.eval.bn_chunk
  if len(images) <= chunk:
    return one_batch({
        'params': state.params,
        'batch_stats': state.batch_stats
    }, jnp.asarray(images), _flags(flipped, len(images)))
  stats = statistics(config, state, images, flipped=flipped, chunk=chunk)
  return flows_with(config, state, stats, images, flipped=flipped, chunk=chunk)


def _functions(config: ml_collections.ConfigDict):
  return _flow_functions(asic.make_model(config))


def flows_with(config: ml_collections.ConfigDict,
               state: Any,
               batch_stats: Any,
               images: np.ndarray,
               *,
               flipped: np.ndarray | None = None,
               chunk: int | None = None) -> jax.Array:
  """Flows `[N, S, S, 2]` of `images` with fixed BatchNorm statistics (`statistics` of a
  collection): how photos outside the collection are mapped, `chunk` at a time."""
  _, _, fixed = _functions(config)
  chunk = chunk or config.eval.bn_chunk
  variables = {'params': state.params, 'batch_stats': batch_stats}
  flags = _flags(flipped, len(images))
  return jnp.concatenate([
      fixed(variables, jnp.asarray(images[s:s + chunk]), flags[s:s + chunk])
      for s in range(0, len(images), chunk)
  ])


def statistics(config: ml_collections.ConfigDict,
               state: Any,
               images: np.ndarray,
               *,
               flipped: np.ndarray | None = None,
               chunk: int | None = None) -> Any:
  """The BatchNorm statistics of a collection (a batch_stats tree): the mean and biased
  variance of every layer's inputs over all images, in chunks of `chunk` (each chunk
  normalised by its own statistics on the way; exact for one chunk)."""
  _, stats_of, _ = _functions(config)
  chunk = chunk or config.eval.bn_chunk
  n = len(images)
  zeros = {'params': state.params, 'batch_stats': jax.tree.map(jnp.zeros_like, state.batch_stats)}
  sums = None
  flags = _flags(flipped, n)
  for start in range(0, n, chunk):
    x = jnp.asarray(images[start:start + chunk])
    stats = stats_of(zeros, x, flags[start:start + chunk])
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
  return _rebuild(flat)


def _bn_layers(stats: Any):
  """(path, {'mean', 'var'}) of every BatchNorm layer in a batch_stats tree."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(stats), sep='/')
  layers = {}
  for path, value in flat.items():
    layer, field = path.rsplit('/', 1)
    layers.setdefault(layer, {})[field] = value
  return sorted(layers.items())


def _rebuild(layers: dict) -> Any:
  """A batch_stats tree from {layer path: {'mean', 'var'}} (paths as `_bn_layers` gives)."""
  flat = {
      f'{layer}/{field}': value for layer, fields in layers.items()
      for field, value in fields.items()
  }
  return flax.traverse_util.unflatten_dict(flat, sep='/')
