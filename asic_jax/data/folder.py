"""A folder of your own images (optional masks and keypoints): the collection, before extraction.

  <path>/*.jpg|png|...           the images (any PIL mode; converted to RGB)
  <path>/keypoints.json          optional keypoints (or `keypoints=` another file):
                                 {"image.jpg": [[x, y, visible], ...], ...}, original pixels,
                                 the same K per image; an image left out has none visible
  <mask_dir>/<same stem>.<any>   optional masks (`images.read_mask`: a cut-out's alpha, else
                                 the gray level; white = foreground)

Images are edge-padded to a centred square and resized to S (as every loader does);
masks go through the same frame.
"""

import json
import pathlib
import warnings

import numpy as np

from asic_jax.data import collection as collection_lib
from asic_jax.data import images as images_lib
from asic_jax.errors import UserError

KEYPOINTS_FILE = 'keypoints.json'


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


def read_keypoints(path: str | pathlib.Path, files: list[pathlib.Path],
                   frames: list[images_lib.SquareFrame]) -> tuple[np.ndarray, np.ndarray]:
  """A keypoint JSON as `[N, K, 2]` (x, y) in the S frame and `[N, K]` visibility."""
  path = pathlib.Path(path)
  try:
    entries = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise UserError(f'cannot read keypoints {path}: {e}') from e
  if not isinstance(entries, dict) or not entries:
    raise UserError(f'{path}: expected {{"image.jpg": [[x, y, visible], ...], ...}}')
  by_name = {p.name: i for i, p in enumerate(files)} | {p.stem: i for i, p in enumerate(files)}
  unknown = [name for name in entries if name not in by_name]
  if unknown:
    raise UserError(f'{path}: no image {unknown[0]!r} in the folder')
  lengths = {len(points) for points in entries.values()}
  if len(lengths) != 1:
    raise UserError(f'{path}: every image needs the same number of keypoints, got {lengths}')
  k = lengths.pop()
  points = np.zeros((len(files), k, 2), np.float32)
  visible = np.zeros((len(files), k), bool)
  for name, rows in entries.items():
    i = by_name[name]
    rows = images_lib.numbers(rows, f'{path}: {name}')
    if rows.size == 0:
      rows = rows.reshape(k, 3)
    if rows.shape != (k, 3):
      raise UserError(f'{path}: {name}: keypoints are [x, y, visible] triples')
    visible[i] = rows[:, 2] > 0
    points[i] = np.where(visible[i, :, None], frames[i].points(rows[:, :2]), 0.0)
  return points, visible


def load_folder(path: str | pathlib.Path,
                size: int,
                *,
                mask_dir: str | pathlib.Path | None = None,
                keypoints: str | pathlib.Path | None = None,
                name: str | None = None) -> collection_lib.Collection:
  """Images (masks, keypoints) of a folder as a `Collection` without correspondences yet.

  With keypoints, PCK is scored on every ordered pair with threshold S ('img'), as the
  paper does for CUB; `eval.threshold='kp_bbox'` switches to the keypoints' box.
  """
  if not str(path):
    raise UserError('no image folder: give --config.data.path=DIR, a folder of images')
  path = pathlib.Path(path)
  if not path.is_dir():
    raise UserError(f'image folder not found: {path}; give --config.data.path=DIR, a folder '
                    'of images')
  files = images_lib.list_images(path)
  skipped = images_lib.skipped_files(path, (KEYPOINTS_FILE,))
  if skipped:
    warnings.warn(f'{path}: {len(skipped)} files are not images and are skipped: '
                  f'{", ".join(skipped[:5])}{" ..." if len(skipped) > 5 else ""} (images: '
                  f'{", ".join(images_lib.IMAGE_SUFFIXES)})')
  if len(files) < 2:
    raise UserError(f'{path}: a collection needs at least two images, found {len(files)} '
                    f'({", ".join(images_lib.IMAGE_SUFFIXES)})')
  images_lib.unique_stems(files, str(path))
  stems = [p.stem for p in files]
  squares, frames, masks = [], [], []
  mask_files = find_masks(mask_dir, stems) if mask_dir else [None] * len(files)
  for file, mask_path in zip(files, mask_files):
    image = images_lib.read_rgb(file)
    square, frame = images_lib.square(image, size)
    squares.append(square)
    frames.append(frame)
    if mask_path is not None:
      mask = images_lib.read_mask(mask_path)
      if mask.shape != image.shape[:2]:
        raise UserError(f'mask {mask_path} is {mask.shape[1]} x {mask.shape[0]}, its image '
                        f'{file} {image.shape[1]} x {image.shape[0]}')
      # The mask takes its image's frame: the same centred edge-padding and resize.
      masks.append(np.clip(images_lib.square(mask, size)[0], 0.0, 1.0))
  collection = collection_lib.Collection(
      name=name or path.name,
      images=images_lib.to_unit_range(np.stack(squares)),
      names=tuple(stems),
      masks=np.stack(masks).astype(np.float32) if masks else None,
      frames=tuple(frames))
  keypoints = keypoints or (path / KEYPOINTS_FILE if (path / KEYPOINTS_FILE).is_file() else None)
  if keypoints is None:
    return collection
  points, visible = read_keypoints(keypoints, files, frames)
  lengths = np.full(len(files), float(size), np.float32)
  return collection.replace(keypoints=points,
                            visibility=visible,
                            thresholds=lengths,
                            threshold_kind='img',
                            eval_pairs=collection_lib.eval_pairs_from_keypoints(
                                points, visible, lengths))
