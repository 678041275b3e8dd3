"""Devices: the 1-D ('data',) mesh and the shard_map / pmap wrappers.

This is the only module that knows about devices. The training step is written
once, per device: it reads its device index with `lax.axis_index(AXIS)`, takes
its slice of the global batch, and averages gradients with `lax.pmean(g, AXIS)`.
`DataParallel.wrap` runs that function under `jax.shard_map` inside `jax.jit`
(the default; what `jax.pmap` itself compiles to since JAX 0.8) or under
`jax.pmap`. Every argument and result is replicated: the state, the collection
(kept on the devices for the whole run) and the frozen perceptual weights.

Across hosts (`config.distributed`, after `initialize_distributed`), the mesh spans
every process's devices; each process holds the same host data (same collection, same
seed) and builds the global replicated arrays from it; only process 0 writes files.
"""

import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from asic_jax.errors import UserError

AXIS = 'data'
MODES = ('shard_map', 'pmap')

# XLA:CPU (jaxlib 0.10) hands convolutions, matrix products and reductions to YNNPACK by
# default, and YNNPACK runs a convolution on one thread where XLA's own (Eigen) convolution
# uses every core: one 3x3 convolution of the `cpu` shape's U-Net with both gradients (16 x
# 128², 32 -> 16 channels) takes 120 ms at 1.4 CPU-seconds per second against 79 ms at 1.8 on
# two cores, and the whole `cpu` step 781 -> 697 ms (the `released` step 1355 -> 1217 ms),
# compiled both ways in one process and timed interleaved (BENCHMARKS.md, "Where the CPU step
# went"). Reductions stay with YNNPACK: taking them from it too lost the gain. The results
# differ only by float rounding (tests/parallel_test.py).
_YNN_FLAG = 'xla_cpu_experimental_ynn_fusion_type'
CPU_COMPILER_OPTIONS = {_YNN_FLAG: 'LIBRARY_FUSION_TYPE_REDUCE'}


def compiler_options(devices: Sequence[jax.Device] | None = None) -> dict[str, str] | None:
  """`jax.jit`'s `compiler_options` for the U-Net's programs on `devices` (default: all):
  `CPU_COMPILER_OPTIONS` on CPUs, none elsewhere or where `XLA_FLAGS` already sets the
  YNNPACK fusions (the user's setting wins)."""
  devices = jax.devices() if devices is None else devices
  if devices[0].platform != 'cpu' or _YNN_FLAG in os.environ.get('XLA_FLAGS', ''):
    return None
  return dict(CPU_COMPILER_OPTIONS)


class DataParallel:
  """Replicates pytrees over the devices and wraps per-device functions."""

  def __init__(self, mode: str = 'shard_map', devices: Sequence[jax.Device] | None = None):
    if mode not in MODES:
      raise UserError(f"config.parallel must be one of {MODES}, got {mode!r}")
    self.mode = mode
    self.devices = list(devices if devices is not None else jax.devices())
    if mode == 'pmap' and jax.process_count() > 1:
      raise UserError("config.parallel='pmap' runs on one host; across hosts use 'shard_map'")
    self.mesh = jax.make_mesh((len(self.devices),), (AXIS,), devices=self.devices)
    self._replicated = NamedSharding(self.mesh, P())
    # pmap's inputs, stacked as its outputs are: over a mesh of Auto axes, so that `x[0]`
    # (`local`, `unreplicate`) reads a fresh state as it reads a trained one (over the default
    # Explicit axes that indexing is refused).
    auto = jax.make_mesh((len(self.devices),), (AXIS,),
                         devices=self.devices,
                         axis_types=(jax.sharding.AxisType.Auto,))
    self._stacked = NamedSharding(auto, P(AXIS))

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def replicate(self, tree: Any) -> Any:
    """Puts one copy of `tree` on every device (pmap: a leading device axis)."""
    if self.mode == 'shard_map':
      if jax.process_count() > 1:
        # Every process holds the whole value; the global array is built from those copies.
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self._replicated, np.asarray(x)), tree)
      return jax.device_put(tree, self._replicated)
    n = self.num_devices

    def stack(x):
      x = np.asarray(x) if not isinstance(x, jax.Array) else x
      return jnp.broadcast_to(x[None], (n,) + x.shape)

    return jax.device_put(jax.tree.map(stack, tree), self._stacked)

  def unreplicate(self, tree: Any) -> Any:
    """The tree as one logical copy: global replicated arrays (what checkpoints save)."""
    if self.mode == 'shard_map':
      return tree
    return jax.tree.map(lambda x: x[0], tree)

  def local(self, tree: Any) -> Any:
    """A copy of a replicated tree on this process's first device (to read or evaluate)."""
    if self.mode == 'pmap':
      return jax.tree.map(lambda x: x[0], tree)
    return jax.tree.map(lambda x: x.addressable_data(0), tree)

  def abstract(self, tree: Any) -> Any:
    """Shapes, dtypes and the placement a checkpoint of `tree` is restored into."""
    sharding = (self._replicated
                if self.mode == 'shard_map' else jax.sharding.SingleDeviceSharding(self.devices[0]))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)

  def wrap(self, fn: Callable, donate_argnums: Sequence[int] = ()) -> Callable:
    """Compiles per-device `fn(*replicated_args) -> replicated results`."""
    if self.mode == 'pmap':
      return jax.pmap(fn, axis_name=AXIS, devices=self.devices, donate_argnums=donate_argnums)
    # check_vma=False gives shard_map pmap's typing of collectives, so the very
    # same per-device code (an explicit pmean of gradients) serves both wrappers.
    mapped = jax.shard_map(fn, mesh=self.mesh, in_specs=P(), out_specs=P(), check_vma=False)
    return jax.jit(mapped,
                   donate_argnums=donate_argnums,
                   compiler_options=compiler_options(self.devices))

  def check_divisible(self, num_pairs: int) -> None:
    """Devices get whole pairs: the global pair count must divide by the devices."""
    if num_pairs % self.num_devices:
      raise UserError(
          f'config.train.batch_size gives {num_pairs} pairs per step, which does not divide '
          f'by the {self.num_devices} devices; each device takes whole pairs. Use a batch '
          f'size that is a multiple of {2 * self.num_devices}.')


def on_one_device(tree: Any) -> Any:
  """Shapes and dtypes of `tree` placed on this process's first device: the template a
  checkpoint is restored into for evaluation and figures."""
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def device_slice(x: jax.Array, per_device: int, axis: int = 0) -> jax.Array:
  """This device's `per_device` rows of a global-batch array (inside `wrap`)."""
  start = jax.lax.axis_index(AXIS) * per_device
  return jax.lax.dynamic_slice_in_dim(x, start, per_device, axis=axis)


def is_primary() -> bool:
  """Whether this process writes logs, figures and reports (process 0)."""
  return jax.process_index() == 0


def initialize_distributed(config) -> None:
  """`jax.distributed.initialize` when `config.distributed`: JAX's own detection (TPU pods,
  SLURM, ...) or the explicit `coordinator_address` / `num_processes` / `process_id`.

  Must run before anything touches a device; once initialised, a later call does nothing. CPU processes talk through gloo (the setting
  only concerns the CPU backend; GPUs and TPUs use their own collectives).
  """
  if not config.distributed or jax.distributed.is_initialized():
    return
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  options = {}
  if config.coordinator_address:
    options['coordinator_address'] = config.coordinator_address
  if config.num_processes > 0:
    options['num_processes'] = config.num_processes
  if config.process_id >= 0:
    options['process_id'] = config.process_id
  jax.distributed.initialize(**options)


def every_process(value: int) -> np.ndarray:
  """`value` (an int) of every process, in process order: a collective, which every process
  must call at the same point."""
  if jax.process_count() == 1:
    return np.asarray([value])
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return np.asarray(multihost_utils.process_allgather(np.int32(value)))
