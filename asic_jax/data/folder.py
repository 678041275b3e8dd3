"""A folder of your own images (and optional masks): the collection, before extraction.

  <path>/*.jpg|png|...           the images (any PIL mode; converted to RGB)
  <mask_dir>/<same stem>.<any>   optional masks (`images.read_mask`: a cut-out's alpha, else
                                 the gray level; white = foreground)

Images are edge-padded to a centred square and resized to S (as every loader does);
masks go through the same frame.
"""

import pathlib

import numpy as np

from asic_jax.data import collection as collection_lib
from asic_jax.data import images as images_lib
from asic_jax.errors import UserError


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
  if not str(path):
    raise UserError('no image folder: give --config.data.path=DIR, a folder of images')
  path = pathlib.Path(path)
  if not path.is_dir():
    raise UserError(f'image folder not found: {path}; give --config.data.path=DIR, a folder '
                    'of images')
  files = images_lib.list_images(path)
  if len(files) < 2:
    raise UserError(f'{path}: a collection needs at least two images, found {len(files)} '
                    f'({", ".join(images_lib.IMAGE_SUFFIXES)})')
  stems = [p.stem for p in files]
  if len(set(stems)) != len(stems):
    raise UserError(f'{path}: two images share a file stem; names must be unique')
  squares, masks = [], []
  mask_files = find_masks(mask_dir, stems) if mask_dir else [None] * len(files)
  for file, mask_path in zip(files, mask_files):
    image = images_lib.read_rgb(file)
    squares.append(images_lib.square(image, size)[0])
    if mask_path is not None:
      mask = images_lib.read_mask(mask_path)
      if mask.shape != image.shape[:2]:
        raise UserError(f'mask {mask_path} is {mask.shape[1]} x {mask.shape[0]}, its image '
                        f'{file} {image.shape[1]} x {image.shape[0]}')
      # The mask takes its image's frame: the same centred edge-padding and resize.
      masks.append(np.clip(images_lib.square(mask, size)[0], 0.0, 1.0))
  return collection_lib.Collection(name=name or path.name,
                                   images=images_lib.to_unit_range(np.stack(squares)),
                                   names=tuple(stems),
                                   masks=np.stack(masks).astype(np.float32) if masks else None)
