"""Shared test set-up: two fake CPU devices, set once before JAX starts."""

import importlib.util
import os
import pathlib
import subprocess
import sys
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


def two_image_collection(size: int = 16, kind: str = 'img', name: str = 'two', masks: bool = False):
  """Two blank S x S images whose ground truth is known by hand: object boxes of max side 10
  and 4, visible keypoints whose boxes have max sides 6 and 3, scored by PCK length `kind`
  ('img': S; 'bbox': [10, 4]; 'kp_bbox': [6, 3])."""
  from asic_jax.data import collection as collection_lib  # pylint: disable=import-outside-toplevel
  keypoints = np.asarray([[[2.0, 3.0], [8.0, 5.0]], [[1.0, 1.0], [1.0, 4.0]]], np.float32)
  visibility = np.ones((2, 2), bool)
  lengths = np.asarray({'img': [size] * 2, 'bbox': [10, 4], 'kp_bbox': [6, 3]}[kind], np.float32)
  return collection_lib.Collection(name=name,
                                   images=np.zeros((2, size, size, 3), np.float32),
                                   names=('a', 'b'),
                                   keypoints=keypoints,
                                   visibility=visibility,
                                   thresholds=lengths,
                                   eval_pairs=collection_lib.eval_pairs_from_keypoints(
                                       keypoints, visibility, lengths),
                                   threshold_kind=kind,
                                   bboxes=np.asarray([[0, 0, 10, 5], [2, 2, 6, 5]], np.float32),
                                   masks=np.ones((2, size, size), np.float32) if masks else None)


def cli_env(**extra: str) -> dict[str, str]:
  """The environment of a command-line run from a test: offline, and sharing this session's
  compilation cache (a run whose step another run of the session compiled loads it)."""
  return dict(os.environ,
              HF_HUB_OFFLINE='1',
              JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
              **extra)


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
  """`python -m asic_jax.main ARGS` from the repository, offline, output captured."""
  return subprocess.run([sys.executable, '-m', 'asic_jax.main', *args],
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        timeout=timeout,
                        env=cli_env())


def readme_command(marker: str) -> str:
  """The README's shell command whose text contains `marker`, minus its install part."""
  for line in (ROOT / 'README.md').read_text().splitlines():
    if marker in line and line.startswith('pip install'):
      return line.split('&&', 1)[1].strip()
  raise AssertionError(f'README.md has no command containing {marker!r}')


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory) -> pathlib.Path:
  """One run of the README's main command (configs/tiny.py), shared by every test that
  needs a trained workdir: resume, eval, visualisation and report tests."""
  workdir = tmp_path_factory.mktemp('tiny_run')
  command = readme_command('asic_jax.main --config=configs/tiny.py')
  assert '--workdir=runs/tiny' in command
  command = command.replace('--workdir=runs/tiny', f'--workdir={workdir}')
  result = subprocess.run(command,
                          shell=True,
                          cwd=ROOT,
                          env=cli_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  (workdir.parent / 'tiny_run_stderr.txt').write_text(result.stderr)
  return workdir


@pytest.fixture(scope='session')
def tiny_vit(tmp_path_factory) -> pathlib.Path:
  """A random DINO-shaped ViT (12 blocks, 6 heads, patch 8, 24 wide) saved as a Hugging Face
  folder: loaded through exactly the path `facebook/dino-vits8` takes."""
  import transformers  # pylint: disable=import-outside-toplevel
  path = tmp_path_factory.mktemp('tiny_vit')
  config = transformers.ViTConfig(hidden_size=24,
                                  num_hidden_layers=12,
                                  num_attention_heads=6,
                                  intermediate_size=48,
                                  patch_size=8,
                                  image_size=224)
  transformers.FlaxViTModel(config, seed=0, add_pooling_layer=False).save_pretrained(path)
  return path


@pytest.fixture(scope='session')
def tiny_dinov2(tmp_path_factory) -> pathlib.Path:
  """A random DINOv2-shaped model (12 blocks, 6 heads, patch 14, 24 wide) saved as a Hugging
  Face folder: loaded through exactly the path `facebook/dinov2-small` takes."""
  import transformers  # pylint: disable=import-outside-toplevel
  path = tmp_path_factory.mktemp('tiny_dinov2')
  config = transformers.Dinov2Config(hidden_size=24,
                                     num_hidden_layers=12,
                                     num_attention_heads=6,
                                     mlp_ratio=2,
                                     patch_size=14,
                                     image_size=224)
  transformers.FlaxDinov2Model(config, seed=0).save_pretrained(path)
  return path
