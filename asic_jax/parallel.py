"""Devices: the 1-D ('data',) mesh and the shard_map / pmap wrappers.

This is the only module that knows about devices. The training step is written
once, per device: it reads its device index with `lax.axis_index(AXIS)`, takes
its slice of the global batch, and averages gradients with `lax.pmean(g, AXIS)`.
`DataParallel.wrap` runs that function under `jax.shard_map` inside `jax.jit`
(the default; what `jax.pmap` itself compiles to since JAX 0.8) or under
`jax.pmap`. Every argument and result is replicated: the state, the collection
(kept on the devices for the whole run) and the frozen perceptual weights.
"""

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from asic_jax.errors import UserError

AXIS = 'data'
MODES = ('shard_map', 'pmap')


class DataParallel:
  """Replicates pytrees over the devices and wraps per-device functions."""

  def __init__(self, mode: str = 'shard_map', devices: Sequence[jax.Device] | None = None):
    if mode not in MODES:
      raise UserError(f"config.parallel must be one of {MODES}, got {mode!r}")
    self.mode = mode
    self.devices = list(devices if devices is not None else jax.devices())
    self.mesh = jax.make_mesh((len(self.devices),), (AXIS,), devices=self.devices)
    self._replicated = NamedSharding(self.mesh, P())
    self._stacked = NamedSharding(self.mesh, P(AXIS))

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def replicate(self, tree: Any) -> Any:
    """Puts one copy of `tree` on every device (pmap: a leading device axis)."""
    if self.mode == 'shard_map':
      return jax.device_put(tree, self._replicated)
    n = self.num_devices

    def stack(x):
      x = np.asarray(x) if not isinstance(x, jax.Array) else x
      return jnp.broadcast_to(x[None], (n,) + x.shape)

    return jax.device_put(jax.tree.map(stack, tree), self._stacked)

  def unreplicate(self, tree: Any) -> Any:
    """One device copy of a replicated tree (still on device)."""
    if self.mode == 'shard_map':
      return tree
    return jax.tree.map(lambda x: x[0], tree)

  def wrap(self, fn: Callable, donate_argnums: Sequence[int] = ()) -> Callable:
    """Compiles per-device `fn(*replicated_args) -> replicated results`."""
    if self.mode == 'pmap':
      return jax.pmap(fn, axis_name=AXIS, devices=self.devices, donate_argnums=donate_argnums)
    # check_vma=False gives shard_map pmap's typing of collectives, so the very
    # same per-device code (an explicit pmean of gradients) serves both wrappers.
    mapped = jax.shard_map(fn, mesh=self.mesh, in_specs=P(), out_specs=P(), check_vma=False)
    return jax.jit(mapped, donate_argnums=donate_argnums)

  def check_divisible(self, num_pairs: int) -> None:
    """Devices get whole pairs: the global pair count must divide by the devices."""
    if num_pairs % self.num_devices:
      raise UserError(
          f'config.train.batch_size gives {num_pairs} pairs per step, which does not divide '
          f'by the {self.num_devices} devices; each device takes whole pairs. Use a batch '
          f'size that is a multiple of {2 * self.num_devices}.')


def device_slice(x: jax.Array, per_device: int, axis: int = 0) -> jax.Array:
  """This device's `per_device` rows of a global-batch array (inside `wrap`)."""
  start = jax.lax.axis_index(AXIS) * per_device
  return jax.lax.dynamic_slice_in_dim(x, start, per_device, axis=axis)
