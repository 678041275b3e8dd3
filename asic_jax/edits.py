"""Edit propagation (paper §4.3): an RGBA edit painted once, on the canonical square or on one
image, carried to every image through canonical space: `propagate`, what the Python API
(`Alignment.propagate`), `mode=visualize` and `mode=map` all carry edits with.

Frames: images `[N, S, S, 3]` in [-1, 1], flows `[N, S, S, 2]` canonical (x, y) in [-1, 1],
masks `[N, S, S]` in [0, 1]; an edit is `[h, w, 4]` RGBA in [0, 1], stretched over the square
it is painted on.
"""

import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from asic_jax.data import collection as collection_lib
from asic_jax.errors import UserError
from asic_jax.evaluation import transfer
from asic_jax.ops import sampling, splat


def as_rgba(edit) -> np.ndarray:
  """An edit as `[h, w, 4]` float32 RGBA in [0, 1]: an image file (`load_edit`), or an array
  (uint8, or floats in [0, 1])."""
  if isinstance(edit, (str, os.PathLike)):
    return load_edit(edit)
  edit = np.asarray(edit)
  if edit.ndim != 3 or edit.shape[-1] != 4:
    raise UserError(f'edit_rgba must be [h, w, 4] RGBA, got shape {edit.shape}')
  return edit / 255.0 if edit.dtype == np.uint8 else edit.astype(np.float32)


def load_edit(path: str | pathlib.Path) -> np.ndarray:
  """An image file as RGBA `[h, w, 4]` float32 in [0, 1] (opaque when it has no alpha)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise UserError(f'edit.image: no file {path}')
  with Image.open(path) as image:
    return np.asarray(image.convert('RGBA'), np.float32) / 255.0


def edit_index(on: str, names: tuple[str, ...]) -> int | None:
  """`edit.on`: None for 'canonical', else the image it names (a name or an index)."""
  if on == 'canonical':
    return None
  index = collection_lib.find_image(on, names)
  if index is None:
    raise UserError(f"edit.on must be 'canonical', an image name or an index, got {on!r}")
  return index


def premultiply(edit: jax.Array) -> jax.Array:
  """`[..., 4]` RGBA with its colour multiplied by its alpha."""
  return jnp.concatenate([edit[..., :3] * edit[..., 3:], edit[..., 3:]], axis=-1)


@functools.partial(jax.jit, static_argnames=('on',))
def edit_canvas(edit: jax.Array, flows: jax.Array, masks: jax.Array, on: int | None) -> jax.Array:
  """The edit in canonical space: `[S, S, 4]` premultiplied RGBA over the canonical square.

  Args:
    edit: `[h, w, 4]` RGBA in [0, 1].
    flows: `[N, S, S, 2]`; masks `[N, S, S]`.
    on: None when the edit covers the canonical square; else the image it is painted
      on (the edit covers that image's S x S frame): its foreground pixels (mask >= 0.5)
      are splatted into the canvas at their canonical points, and averaged.
  """
  size = flows.shape[1]
  painted = sampling.resize(premultiply(edit), size, size)
  if on is None:
    return painted
  points = sampling.normalized_to_pixel(flows[on].reshape(-1, 2), size)
  accumulated, weight = splat.splat(points, painted.reshape(-1, 4), size, size,
                                    (masks[on] >= transfer.FOREGROUND).reshape(-1))
  return splat.normalize(accumulated, weight)


@jax.jit
def apply_edit(canvas: jax.Array, images: jax.Array, flows: jax.Array,
               masks: jax.Array) -> jax.Array:
  """Every image samples the canvas `[C, C, 4]` at its flow; the edit is composited over its
  foreground: `images [N, S, S, 3]` in [-1, 1] -> `[N, S, S, 3]` in [0, 1]."""

  def one(image, flow, mask):
    rgba = sampling.grid_sample(canvas, flow, padding='zeros') * mask[..., None]
    return (image + 1.0) / 2.0 * (1.0 - rgba[..., 3:]) + rgba[..., :3]

  return jax.vmap(one)(images, flows, masks)


def propagate(edit: np.ndarray, images, flows, masks, on: int | None = None):
  """Carries `edit` (`[h, w, 4]` RGBA in [0, 1]), painted on the canonical square (`on` None) or
  on image `on`, to every image.

  Returns:
    (the canvas: the edit in canonical space, `[S, S, 4]` premultiplied RGBA; the edited images
    `[N, S, S, 3]` in [0, 1]).
  """
  flows, masks = jnp.asarray(flows), jnp.asarray(masks)
  canvas = edit_canvas(jnp.asarray(edit), flows, masks, on)
  return canvas, apply_edit(canvas, jnp.asarray(images), flows, masks)
