"""`load_collection(config)`: the collection `config.data.name` names: images and ground truth.

Pseudo-matches, masks and parts are added by `asic_jax.training_collection.load` (data never imports
the correspondence extraction: the flow is one-way, data -> correspondences -> training_collection).
"""

import dataclasses
import functools
import json
import warnings

import ml_collections
import numpy as np

from asic_jax.data import collection as collection_lib
from asic_jax.data import cub, folder, pfwillow, samurai, spair, synthetic
from asic_jax.data import thresholds as thresholds_lib
from asic_jax.errors import UserError

# Benchmarks: `load_<name>(root, category, size)`, each scored with its dataset's own PCK
# length; `load_collection` applies `eval.threshold`.
BENCHMARKS = {
    'spair': spair.load_spair,
    'cub': cub.load_cub,
    'pfwillow': pfwillow.load_pfwillow,
    'samurai': samurai.load_samurai
}
DATASETS = ('synthetic', 'folder') + tuple(BENCHMARKS)


def load_collection(config: ml_collections.ConfigDict) -> collection_lib.Collection:
  """The collection `config.data` names: images, keypoints, masks where the dataset has
  them, scored with `eval.threshold`; no DINO pseudo-matches yet (the synthetic collection
  brings its own exact ones)."""
  name = config.data.name
  if name == 'synthetic':
    collection = _synthetic(config.data.synthetic.to_json(), config.data.img_size,
                            config.parts.num_parts, config.seed, config.data.path or None,
                            config.pairs.max_per_image, config.pairs.random_per_image)
  elif name == 'folder':
    collection = folder.load_folder(config.data.path,
                                    config.data.img_size,
                                    mask_dir=config.data.mask_dir or None,
                                    keypoints=config.data.keypoints or None)
  elif name in BENCHMARKS:
    collection = BENCHMARKS[name](config.data.root, config.data.category, config.data.img_size)
  else:
    raise UserError(f'config.data.name must be one of {DATASETS}, got {name!r}')
  check_images(collection)
  collection = checked_keypoints(collection)
  if collection.masks is not None:
    collection = collection.replace(masks_from='dataset')
  return thresholds_lib.with_threshold(collection, config.eval.threshold or None)


# Photos smaller than this (either side), or longer than this ratio, get a warning.
SMALL_SIDE = 32
LONG_RATIO = 4.0


def check_images(collection: collection_lib.Collection) -> None:
  """Warns about photos that train poorly: tiny ones (upsampled to S) and very elongated ones
  (mostly padding once squared)."""
  odd = []
  for name, frame in zip(collection.names, collection.frames or ()):
    w, h = frame.width, frame.height
    if w and h and (min(w, h) < SMALL_SIDE or max(w, h) > LONG_RATIO * min(w, h)):
      odd.append(f'{name} ({w} x {h})')
  if odd:
    warnings.warn(f'{collection.name}: {len(odd)} image(s) smaller than {SMALL_SIDE} px or more '
                  f'than {LONG_RATIO:g}:1, padded to squares of {collection.size} px, carry little '
                  f'to align: {", ".join(odd[:5])}{" ..." if len(odd) > 5 else ""}')


def checked_keypoints(collection: collection_lib.Collection) -> collection_lib.Collection:
  """Keypoint annotations checked: a visible NaN is an error naming it; a visible point
  outside its photo is warned about and not counted (in PCK nor k-CyPCK)."""
  if collection.keypoints is None:
    return collection
  names = collection.names

  def check(points, visible, images, what):
    bad = visible & ~np.all(np.isfinite(points), axis=-1)
    if bad.any():
      row, k = np.argwhere(bad)[0]
      raise UserError(f'{collection.name}: {what} {k} of image {names[images[row]]} is '
                      f'{points[row, k].tolist()} but marked visible; fix or hide it')
    if collection.frames is not None:
      original = np.stack([collection.frames[i].to_original(p) for i, p in zip(images, points)])
      inside = np.stack([collection.frames[i].inside(p) for i, p in zip(images, original)])
    else:
      inside = np.all((points >= -0.5) & (points <= collection.size - 0.5), axis=-1)
    return visible & inside, visible & ~inside

  every = np.arange(len(collection))
  visibility, outside = check(collection.keypoints, collection.visibility, every, 'keypoint')
  pairs = collection.eval_pairs
  if pairs is not None:
    src_ok, src_out = check(pairs.src_points, pairs.visible, pairs.src, 'pair keypoint')
    trg_ok, trg_out = check(pairs.trg_points, pairs.visible, pairs.trg, 'pair keypoint')
    pairs = dataclasses.replace(pairs, visible=src_ok & trg_ok)
    if not outside.any() and (src_out | trg_out).any():
      row, k = np.argwhere(src_out | trg_out)[0]
      outside = np.zeros_like(outside)
      outside[pairs.src[row] if src_out[row, k] else pairs.trg[row], k] = True
  if outside.any():
    row, k = np.argwhere(outside)[0]
    warnings.warn(f'{collection.name}: visible keypoints lie outside their photo (first: '
                  f'keypoint {k} of {names[row]}); they are not counted')
  return collection.replace(visibility=visibility, eval_pairs=pairs)


@functools.lru_cache(maxsize=4)
def _synthetic(settings: str, size: int, num_parts: int, seed: int, source: str | None,
               max_per_image: int, random_per_image: int):
  # Memoised: the same collection is asked for by train, eval and visualize in
  # one process (and by many tests); it is deterministic in its arguments.
  return synthetic.make_synthetic(ml_collections.ConfigDict(json.loads(settings)),
                                  size=size,
                                  num_parts=num_parts,
                                  seed=seed,
                                  source=source,
                                  max_per_image=max_per_image,
                                  random_per_image=random_per_image)
