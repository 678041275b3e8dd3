"""A folder of your own images (and optional masks): the collection, before extraction.

  <path>/*.jpg|png|...           the images (any PIL mode; converted to RGB)
  <mask_dir>/<same stem>.<any>   optional masks (grayscale or RGB(A); 255 = foreground)

Images are edge-padded to a centred square and resized to S (as every loader does);
masks go through the same frame.
"""

import pathlib

import numpy as np

from asic_jax.data import collection as collection_lib
from asic_jax.data import images as images_lib
from asic_jax.errors import UserError


def read_mask(path: str | pathlib.Path) -> np.ndarray:
  """A mask file as `[H, W]` uint8 (luma of any mode; alpha ignored)."""
  rgb = images_lib.read_rgb(path).astype(np.float32)
  return np.clip(np.rint(rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)), 0,
                 255).astype(np.uint8)


def find_masks(mask_dir: str | pathlib.Path, stems: list[str]) -> list[pathlib.Path]:
  """The mask file of every stem in `mask_dir` (any image suffix); missing ones are an error."""
  mask_dir = pathlib.Path(mask_dir)
  if not mask_dir.is_dir():
    raise UserError(f'mask folder not found: {mask_dir}')
  by_stem = {p.stem: p for p in images_lib.list_images(mask_dir)}
  missing = [s for s in stems if s not in by_stem]
  if missing:
    raise UserError(f'{mask_dir}: no mask for {len(missing)} image(s): {", ".join(missing[:5])}'
                    f'{" ..." if len(missing) > 5 else ""} (masks need the images\' file stems)')
  return [by_stem[s] for s in stems]


def load_folder(path: str | pathlib.Path,
                size: int,
                *,
                mask_dir: str | pathlib.Path | None = None,
                name: str | None = None) -> collection_lib.Collection:
  """Images (and masks) of a folder as a `Collection` without correspondences yet."""
  path = pathlib.Path(path)
  if not str(path) or not path.is_dir():
    raise UserError(f'image folder not found: {path or "(empty)"}; give '
                    '--config.data.path=DIR, a folder of images')
  files = images_lib.list_images(path)
  if len(files) < 2:
    raise UserError(f'{path}: a collection needs at least two images, found {len(files)} '
                    f'({", ".join(images_lib.IMAGE_SUFFIXES)})')
  stems = [p.stem for p in files]
  if len(set(stems)) != len(stems):
    raise UserError(f'{path}: two images share a file stem; names must be unique')
  images = [images_lib.square(images_lib.read_rgb(p), size)[0] for p in files]
  masks = None
  if mask_dir:
    masks = np.stack([
        images_lib.square(read_mask(p), size)[0] for p in find_masks(mask_dir, stems)
    ]).astype(np.float32) / 255.0
  return collection_lib.Collection(name=name or path.name,
                                   images=images_lib.to_unit_range(np.stack(images)),
                                   names=tuple(stems),
                                   masks=masks)
