"""Shared test set-up: two fake CPU devices, set once before JAX starts."""

import importlib.util
import os
import pathlib
import tempfile

import jax
import ml_collections
import numpy as np
import pytest

# Two fake CPU devices for every data-parallel test; this must run before any
# JAX backend is initialised, which is why it sits at the top of conftest.
jax.config.update('jax_num_cpu_devices', 2)
jax.config.update('jax_platforms', 'cpu')
# Tests build the same programs in many places (each train run jits its step
# afresh): a persistent compilation cache turns every repeat into a cache hit.
jax.config.update('jax_compilation_cache_dir',
                  os.environ.get('ASIC_TEST_JAX_CACHE', tempfile.mkdtemp(prefix='asic-jax-cache-')))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)

ROOT = pathlib.Path(__file__).parent.parent

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
REFERENCE = FIXTURES / 'reference'


def load_reference(name: str) -> dict[str, np.ndarray]:
  """One `tests/fixtures/reference/<name>.npz` of the released code (no pickles)."""
  with np.load(REFERENCE / f'{name}.npz', allow_pickle=False) as data:
    return {key: data[key] for key in data.files}


@pytest.fixture(scope='session')
def data_dir() -> pathlib.Path:
  """`ASIC_DATA_DIR` (the folder holding real datasets); skips when unset."""
  value = os.environ.get('ASIC_DATA_DIR')
  if not value:
    pytest.skip('ASIC_DATA_DIR is not set')
  path = pathlib.Path(value)
  if not path.is_dir():
    pytest.skip(f'ASIC_DATA_DIR={value} is not a folder')
  return path


def load_config(name: str, arg: str = '', **overrides) -> ml_collections.ConfigDict:
  """`configs/<name>.py:arg` with dotted overrides, e.g. `**{'train.num_steps': 3}`."""
  spec = importlib.util.spec_from_file_location(f'configs_{name}', ROOT / 'configs' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  for dotted, value in overrides.items():
    *path, last = dotted.split('.')
    node = config
    for part in path:
      node = node[part]
    node[last] = value
  return config
