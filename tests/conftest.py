"""Shared test set-up: two fake CPU devices, set once before JAX starts."""

import os
import pathlib

import jax
import numpy as np
import pytest

# Two fake CPU devices for every data-parallel test; this must run before any
# JAX backend is initialised, which is why it sits at the top of conftest.
jax.config.update('jax_num_cpu_devices', 2)
jax.config.update('jax_platforms', 'cpu')

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
