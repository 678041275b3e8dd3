"""Tests of asic_jax.parallel on the two fake CPU devices of conftest: both wrappers run the same
per-device code, each device takes its own slice, and placement is what checkpoints expect."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax import parallel
from asic_jax.errors import UserError

MODES = parallel.MODES


def test_two_devices():
  assert len(jax.devices()) == 2


@pytest.mark.parametrize('mode', MODES)
def test_each_device_takes_its_slice_and_the_mean_is_over_devices(mode):
  dp = parallel.DataParallel(mode)
  batch = np.arange(8, dtype=np.float32).reshape(4, 2)  # 2 rows per device

  def per_device(x):
    mine = parallel.device_slice(x, 2)
    index = jax.lax.axis_index(parallel.AXIS).astype(jnp.float32)
    return dict(sum=jax.lax.psum(jnp.sum(mine), parallel.AXIS),
                first=jax.lax.pmean(mine[0, 0] * (1 - index), parallel.AXIS),
                index=jax.lax.pmean(index, parallel.AXIS))

  out = jax.device_get(dp.local(dp.wrap(per_device)(dp.replicate(batch))))
  assert out['sum'] == batch.sum()
  assert out['first'] == batch[0, 0] / 2  # device 0's first row, averaged with device 1's 0
  assert out['index'] == 0.5


@pytest.mark.parametrize('mode', MODES)
def test_replicate_unreplicate_and_local(mode):
  """A fresh (replicated, not yet stepped) tree reads back too: training reads its step there
  (under pmap over 2 devices that indexing was refused, and `parallel=pmap` stopped at start)."""
  dp = parallel.DataParallel(mode)
  tree = {'w': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': np.float32(2.0)}
  replicated = dp.replicate(tree)
  leading = (2,) if mode == 'pmap' else ()
  assert replicated['w'].shape == leading + (2, 3)
  assert {d for d in replicated['w'].devices()} == set(jax.devices())
  one = dp.unreplicate(replicated)
  assert one['w'].shape == (2, 3)
  local = dp.local(replicated)
  np.testing.assert_array_equal(local['w'], tree['w'])
  assert jax.devices()[0] in local['w'].devices()
  abstract = dp.abstract(one)
  assert abstract['w'].shape == (2, 3) and abstract['b'].dtype == np.float32


def test_on_one_device_is_a_template_on_the_first_device():
  template = parallel.on_one_device({'w': jnp.zeros((3, 2), jnp.bfloat16)})
  assert isinstance(template['w'], jax.ShapeDtypeStruct)
  assert (template['w'].shape, template['w'].dtype) == ((3, 2), jnp.bfloat16)
  assert template['w'].sharding.device_set == {jax.local_devices()[0]}


def test_pairs_must_divide_by_the_devices():
  dp = parallel.DataParallel('shard_map')
  dp.check_divisible(4)
  with pytest.raises(UserError, match='gives 3 pairs per step.*multiple of 4'):
    dp.check_divisible(3)
  assert parallel.DataParallel('shard_map', jax.devices()[:1]).num_devices == 1


def test_an_unknown_mode_is_named():
  with pytest.raises(UserError, match=r"config.parallel must be one of \('shard_map', 'pmap'\)"):
    parallel.DataParallel('vmap')


def test_one_process():
  assert parallel.is_primary()
  np.testing.assert_array_equal(parallel.every_process(7), [7])
  parallel.initialize_distributed(type('Config', (), {'distributed': False})())  # a no-op
  assert not jax.distributed.is_initialized()


def _ynn_convolutions(hlo: str) -> int:
  """How many YNNPACK fusions of a compiled program's text hold a convolution."""
  fused = re.findall(r'kind=kCustom, calls=%?([\w.\-]+)[^\n]*__ynn_fusion', hlo)
  return sum('convolution(' in re.search(r'\n%?' + re.escape(name) + r' .*?\n}', hlo, re.S)[0]
             for name in fused)


def test_cpu_convolutions_leave_ynnpack_and_compute_the_same(monkeypatch):
  """On CPUs the wrapped programs compile with `CPU_COMPILER_OPTIONS`: convolutions run as
  XLA's own (multi-threaded), not as YNNPACK fusions, and a convolution with both gradients
  gives what the default compilation gives, to float rounding; a user's own `XLA_FLAGS`
  setting of the YNNPACK fusions wins."""
  dp = parallel.DataParallel()
  rng = np.random.default_rng(0)
  # 32 channels: XLA:CPU's default gives these convolutions to YNNPACK (at 16 it keeps them).
  x = dp.replicate(rng.standard_normal((2, 16, 16, 32)).astype(np.float32))
  w = dp.replicate(rng.standard_normal((3, 3, 32, 32)).astype(np.float32) / 10)

  def per_device(x, w):

    def loss(x, w):
      y = jax.lax.conv_general_dilated(x,
                                       w, (1, 1),
                                       'SAME',
                                       dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      return jnp.sum(jnp.tanh(y)**2)

    return jax.grad(loss, argnums=(0, 1))(x, w)

  wrapped = dp.wrap(per_device)
  assert parallel.compiler_options() == parallel.CPU_COMPILER_OPTIONS
  # A user's XLA_FLAGS naming the option: `wrap` passes no options of its own. (This process
  # read its flags when JAX started, so the program compiles as jaxlib's default.)
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_experimental_ynn_fusion_type=')
  assert parallel.compiler_options() is None
  default = dp.wrap(per_device)
  assert _ynn_convolutions(default.lower(x, w).compile().as_text()) == 3  # forward, 2 gradients
  assert _ynn_convolutions(wrapped.lower(x, w).compile().as_text()) == 0
  for ours, theirs in zip(jax.device_get(wrapped(x, w)), jax.device_get(default(x, w))):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)
