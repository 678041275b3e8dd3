"""The Python API over a trained run: `asic_jax.load(workdir)` -> `Alignment`.

    import asic_jax
    run = asic_jax.load('runs/duck')                      # the latest checkpoint
    cc, mask = run.canonical('duck(S)_060_0000')          # [H, W, 2] canonical (x, y), [H, W]
    seen = run.transfer([[120, 80]], src=0, trg='all')    # {name: [1, 2]} in each photo's pixels
    more = run.map(['new/a.jpg', 'new/b.jpg'])            # photos not in the collection
    more.transfer([[120, 80]], src=0, trg='a')
    run.export('duck.npz')

Frames: every point argument and result is (x, y) in the pixels of the image's *original*
photo (0 ... W - 1, corner-aligned pixel centres), not the S x S square the model sees; the
run keeps each photo's `SquareFrame` (padding, scale and size) and maps through it. Images are
named by name or by index. One restore (`asic_jax.restore`) and one inference path
(`asic_jax.flows`, `asic_jax.evaluation`) serve `mode=eval`, `mode=visualize` and this API,
so a transfer here is exactly `mode=eval`'s in the S frame.

Photos outside the collection (`map`) are run through the U-Net with the *collection's*
BatchNorm statistics; their masks are given, or made as training made them (whole images
when the run used `features.masks='none'`; DINO co-segmentation of the collection together
with the new photos for `'coseg'`). A run with `eval.congeal_steps` reads congealed flows
(`asic_jax.congeal`); new photos take one move against the collection's template, so the
collection's own flows and transfers stay as they were.
"""

import functools
import os
import pathlib
from typing import Sequence
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from asic_jax import congeal, edits, figures, restore
from asic_jax import flows as flows_lib
from asic_jax.correspondences import matching
from asic_jax.data import collection as collection_lib
from asic_jax.data import images as images_lib
from asic_jax.errors import UserError
from asic_jax.evaluation import protocol
from asic_jax.evaluation import transfer as transfer_lib
from asic_jax.ops import sampling

ImageRef = int | str


class UnknownImage(UserError, KeyError):
  """An image name or index the alignment does not hold."""

  def __str__(self):  # KeyError's repr-quoting would wrap the message in quotes
    return str(self.args[0])


class PointOutside(UserError):
  """A point outside its photo."""


def load(workdir: str | os.PathLike, step: int | None = None) -> 'Alignment':
  """The trained run in `workdir` at `step` (None: the newest checkpoint that reads).

  Raises:
    UserError: no checkpoint, no such step, or the run's dataset is gone.
  """
  return restored(None, workdir, step=int(step or 0))


def restored(cli, workdir, step: int = 0) -> 'Alignment':
  """`restore.restore_run` as an `Alignment`: the run in `workdir` at `step` (0: the newest
  that reads), or at `cli.eval.step` with the command line's evaluation settings (`cli`; None:
  the run's own)."""
  config, collection, state, step = restore.restore_run(cli, workdir, step=step)
  flows, found = congeal.collection_flows(config, state, collection)
  return Alignment(config, collection, state, step, flows, template=found)


@functools.partial(jax.jit, static_argnames=('size',))
def _sample(field: jax.Array, points: jax.Array, size: int) -> jax.Array:
  """`field [S, S, C]` read bilinearly (border) at S-frame pixels `points [..., 2]`."""
  return sampling.grid_sample(field, sampling.pixel_to_normalized(points, size), 'border')


class Alignment:
  """A trained alignment of a collection (and of photos mapped into it), loaded once.

  Attributes:
    config: the run's config (as saved with its checkpoint).
    collection: the `Collection` (its images as S x S squares in [-1, 1]).
    step: the checkpoint step.
    names: the image names, in index order.
    size: S.
  """

  def __init__(self,
               config,
               collection: collection_lib.Collection,
               state,
               step: int,
               flows: jax.Array,
               *,
               statistics=None,
               template: jax.Array | None = None):
    self.config, self.collection, self.step = config, collection, int(step)
    self._state = state
    self._flows = jnp.asarray(flows)
    self._masks = jnp.asarray(collection.masks_or_ones())
    self._statistics = statistics
    self._descriptors = None
    # With `eval.congeal_steps`: the collection's last template (`congeal.congeal`), which
    # photos mapped later are aligned against; None: recomputed on first need.
    self._template = template

  # -- names and frames ---------------------------------------------------------------------

  @property
  def names(self) -> tuple[str, ...]:
    return self.collection.names

  @property
  def size(self) -> int:
    return self.collection.size

  def __len__(self) -> int:
    return len(self.collection)

  def index(self, image: ImageRef) -> int:
    """An image's index from its name or index (negative counts from the end; a string of
    digits that is not a name is an index)."""
    n = len(self)
    found = collection_lib.find_image(image, self.names)
    if found is not None:
      return found
    shown = ', '.join(self.names[:6]) + (' ...' if n > 6 else '')
    raise UnknownImage(f'no image {image!r} in this alignment: {n} images, indices 0 ... '
                       f'{n - 1}, names {shown}')

  def frame(self, image: ImageRef) -> images_lib.SquareFrame:
    """How the photo became its S x S square (an identity frame for square inputs)."""
    frames = self.collection.frames
    if frames is None or frames[self.index(image)] is None:
      return images_lib.SquareFrame(0, 0, 1.0, self.size, self.size)
    return frames[self.index(image)]

  def _to_square(self, image: ImageRef, points, what: str) -> np.ndarray:
    points = images_lib.numbers(points, what)
    if points.ndim != 2 or points.shape[1] != 2:
      raise UserError(f'{what} must be [K, 2] (x, y) pixels, got shape {points.shape}')
    frame = self.frame(image)
    square = frame.points(points)
    outside = ~frame.inside(points) | ~self._covered(square) | ~np.all(np.isfinite(points), 1)
    if outside.any():
      k = int(np.argmax(outside))
      raise PointOutside(f'{what}: point {k} {points[k].tolist()} is outside image '
                         f'{self.names[self.index(image)]!r} ({frame.width} x {frame.height} px'
                         f'{", cropped" if frame.left < 0 or frame.top < 0 else ""})')
    return square

  def _covered(self, square: np.ndarray) -> np.ndarray:
    """Whether S-frame points lie on the square (a crop's square covers part of its photo)."""
    return np.all((square >= -0.5) & (square <= self.size - 0.5), axis=-1)

  def _pixel_grid(self, image: ImageRef) -> np.ndarray:
    """`[H, W, 2]` S-frame positions of every pixel of the original photo."""
    frame = self.frame(image)
    xs, ys = np.meshgrid(np.arange(frame.width), np.arange(frame.height), indexing='xy')
    return frame.points(np.stack([xs, ys], -1))

  def photo(self, image: ImageRef) -> np.ndarray:
    """The photo as the run holds it, back at its own size: `[H, W, 3]` uint8 (resampled from
    its S x S square)."""
    i = self.index(image)
    square = np.rint((self.collection.images[i] + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    return self.frame(i).unsquare(square)

  def colour_map(self, image: ImageRef) -> np.ndarray:
    """The canonical colour map (paper Fig. 3) over the photo's foreground, at its own size:
    `[H, W, 3]` uint8; same colour, same canonical point."""
    coords, mask = self.canonical(image)
    colours = np.asarray(figures.colour_wheel(jnp.asarray(np.nan_to_num(coords))))
    blended = self.photo(image) / 255.0 * (1 - mask[..., None]) + colours * mask[..., None]
    return np.rint(np.clip(blended, 0, 1) * 255).astype(np.uint8)

  # -- per-image and pairwise maps ----------------------------------------------------------

  def canonical(self, image: ImageRef) -> tuple[np.ndarray, np.ndarray]:
    """Canonical (x, y) in [-1, 1] of every pixel of the photo, `[H, W, 2]`, and its
    foreground mask `[H, W]` in [0, 1] (a crop's photo: NaN and 0 outside the crop)."""
    i = self.index(image)
    grid = self._pixel_grid(i)
    coords = np.asarray(_sample(self._flows[i], jnp.asarray(grid), self.size))
    mask = np.asarray(_sample(self._masks[i][..., None], jnp.asarray(grid), self.size)[..., 0])
    covered = self._covered(grid)
    return np.where(covered[..., None], coords, np.nan), np.where(covered, mask, 0.0)

  def transfer(self,
               points,
               src: ImageRef,
               trg: ImageRef | str = 'all',
               *,
               method: str | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """Carries `points [K, 2]` (pixels of photo `src`) to photo `trg`: `[K, 2]` pixels of
    `trg`; `trg='all'` gives `{name: [K, 2]}` for every other image.

    `method` is 'nearest' (the paper's), 'soft' (a window soft-argmax) or 'refine' (the
    canonical transfer refined by the backbone's descriptors, coarse to fine); None takes the
    run's `eval.transfer`. In the S frame this is exactly `mode=eval`'s transfer.
    """
    s = self.index(src)
    square = jnp.asarray(self._to_square(s, points, 'points'), jnp.float32)
    if isinstance(trg, str) and trg == 'all' and 'all' not in self.names:
      return {
          self.names[t]: self.transfer(points, s, t, method=method)
          for t in range(len(self))
          if t != s
      }
    t = self.index(trg)
    e = self.config.eval
    method = method or e.transfer
    descriptors = None
    if method == 'refine':
      grids, centers = self._match_descriptors()
      descriptors = transfer_lib.Descriptors(grids[s], grids[t], centers,
                                             protocol.refine_sigma_px(self.config, self.size),
                                             float(e.refine_temperature))
    found = transfer_lib.transfer(self._flows[s],
                                  self._flows[t],
                                  self._masks[t],
                                  square,
                                  method=method,
                                  window=int(e.soft_window),
                                  temperature=float(e.soft_temperature),
                                  descriptors=descriptors)
    return self.frame(t).to_original(np.asarray(found, np.float64))

  def _match_descriptors(self) -> tuple[jax.Array, jax.Array]:
    """The backbone's unit descriptor grids of every image and their cell centres, for
    'refine' (computed, or read from the extraction cache, on first use)."""
    if self._descriptors is None:
      from asic_jax.correspondences import extract  # pylint: disable=import-outside-toplevel
      grids, centers = extract.match_descriptors(self.collection, self.config)
      self._descriptors = (matching.l2_normalize(jnp.asarray(grids)),
                           jnp.asarray(centers, jnp.float32))
    return self._descriptors

  def flow(self, src: ImageRef, trg: ImageRef) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel of photo `trg`: the pixel of photo `src` with the nearest canonical
    coordinate (among `src` pixels with mask >= 0.1), `[H_trg, W_trg, 2]` (x, y) in `src`'s
    pixels, and whether it counts, `[H_trg, W_trg]` bool (the `trg` pixel is foreground,
    mask >= 0.5). What a dense warp carries, seen from the target."""
    s, t = self.index(src), self.index(trg)
    found, valid = self._square_flow(s, t)
    grid = self._pixel_grid(t)
    nearest = np.clip(np.rint(grid), 0, self.size - 1).astype(int)
    rows, cols = nearest[..., 1], nearest[..., 0]
    return self.frame(s).to_original(found[rows, cols]), valid[rows, cols] & self._covered(grid)

  def _square_flow(self, s: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """`flow` in the S frame: `[S, S, 2]` src pixels for every trg pixel, and validity."""
    queries = self._flows[t].reshape(-1, 2)
    found = np.asarray(transfer_lib.nearest_pixels_chunked(self._flows[s], self._masks[s], queries))
    valid = np.asarray(self._masks[t] >= transfer_lib.FOREGROUND) & bool(
        jnp.any(self._masks[s] >= transfer_lib.MASK_THRESHOLD))
    return found.reshape(self.size, self.size, 2).astype(np.float64), valid

  def warp(self, src: ImageRef, trg: ImageRef) -> tuple[np.ndarray, np.ndarray]:
    """Photo `src` warped onto photo `trg` through `flow`: `[H_trg, W_trg, 3]` uint8 (black
    where nothing lands) and the validity `[H_trg, W_trg]`."""
    s, t = self.index(src), self.index(trg)
    found, valid = self._square_flow(s, t)
    image = (jnp.asarray(self.collection.images[s]) + 1.0) / 2.0
    warped = np.asarray(_sample(image, jnp.asarray(found, jnp.float32), self.size))
    warped = np.where(valid[..., None], warped, 0.0)
    frame = self.frame(t)
    pixels = np.rint(np.clip(warped, 0, 1) * 255).astype(np.uint8)
    mask = frame.unsquare(np.repeat(valid[..., None].astype(np.uint8) * 255, 3, -1))[..., 0]
    return frame.unsquare(pixels), mask > 127

  # -- edits and export ---------------------------------------------------------------------

  def propagate(self, edit_rgba, on: ImageRef | str = 'canonical') -> dict[str, np.ndarray]:
    """An RGBA edit (`[h, w, 4]` in [0, 1] or uint8, or an image file) painted once, on the
    canonical square (`on='canonical'`) or on one photo (covering its S x S square), carried
    to every image: `{name: [H, W, 3] uint8}` at each photo's own size."""
    where = None if (isinstance(on, str) and on == 'canonical') else self.index(on)
    _, edited = edits.propagate(edits.as_rgba(edit_rgba), self.collection.images, self._flows,
                                self._masks, where)
    edited = np.asarray(edited)
    pixels = np.rint(np.clip(edited, 0, 1) * 255).astype(np.uint8)
    return {name: self.frame(i).unsquare(pixels[i]) for i, name in enumerate(self.names)}

  def exported(self) -> dict[str, np.ndarray]:
    """What `export` writes, as arrays (see there)."""
    frames = np.asarray([[f.left, f.top, f.scale, f.width, f.height]
                         for f in (self.frame(i) for i in range(len(self)))], np.float64)
    flipped = self.collection.flipped
    return dict(names=np.asarray(self.names),
                flipped=np.zeros(len(self), bool) if flipped is None else np.asarray(flipped, bool),
                canonical=np.asarray(self._flows, np.float32),
                masks=np.asarray(self._masks, np.float32),
                frames=frames,
                size=np.asarray(self.size),
                step=np.asarray(self.step))

  def export(self, path: str | os.PathLike) -> pathlib.Path:
    """One `.npz`: `names [N]`, `canonical [N, S, S, 2]` (each square's pixels' canonical
    (x, y)), `masks [N, S, S]`, `frames [N, 5]` (left, top, scale, width, height: original
    pixel p lands at (p + (left, top) + 0.5) scale - 0.5 in the square), `flipped [N]` (the
    images the network saw mirrored: `features.orient`; the maps are in the photos' own
    pixels either way), `size`, `step`."""
    path = pathlib.Path(path)
    if path.is_dir():
      raise UserError(f'export: {path} is a folder; give a file path ({path / "alignment.npz"}, '
                      'say)')
    from asic_jax import safe_io  # pylint: disable=import-outside-toplevel
    safe_io.write_atomic(path, lambda f: np.savez(f, **self.exported()))
    return path

  # -- photos outside the collection --------------------------------------------------------

  def map(self,
          images: str | os.PathLike | Sequence,
          *,
          masks: Sequence | None = None,
          names: Sequence[str] | None = None) -> 'Alignment':
    """Photos not in the collection, mapped by the trained U-Net with the collection's
    BatchNorm statistics: an `Alignment` over the collection and them together, so transfer,
    flow and warp work between any mix.

    Args:
      images: a folder, image files, or `[H, W, 3]` uint8 arrays.
      masks: one per image (files or `[H, W]` arrays in [0, 1]), or None to make them as
        training did (see the module docstring).
      names: one per image; by default the file stems (arrays: 'new_0', ...).
    """
    photos, default_names = read_photos(images)
    names = tuple(names) if names is not None else default_names
    if len(names) != len(photos):
      raise UserError(f'names: {len(names)} names for {len(photos)} images')
    clash = sorted(set(names) & set(self.names)) or sorted(
        n for n in set(names) if names.count(n) > 1)
    if clash:
      raise UserError(f'names: {clash[0]!r} is taken (the collection or another new photo); '
                      'pass names=')
    squares, frames = zip(*(images_lib.square(p, self.size) for p in photos))
    squares = images_lib.to_unit_range(np.stack(squares))
    new_masks = self._new_masks(squares, photos, frames, masks)
    new_flipped = None
    if self.collection.flipped is not None:  # trained with features.orient: orient them too
      from asic_jax.correspondences import extract  # pylint: disable=import-outside-toplevel
      new_flipped = extract.orient_new(self.collection, squares, new_masks, self.config)
    if self._statistics is None:
      self._statistics = flows_lib.statistics(self.config,
                                              self._state,
                                              self.collection.images,
                                              flipped=self.collection.flipped)
    flows = flows_lib.flows_with(self.config,
                                 self._state,
                                 self._statistics,
                                 squares,
                                 flipped=new_flipped)
    settings = congeal.Settings.of(self.config)
    if settings.steps > 0:  # one move against the collection's template (asic_jax.congeal)
      from asic_jax.correspondences import extract  # pylint: disable=import-outside-toplevel
      if self._template is None:
        _, self._template = congeal.collection_flows(self.config, self._state, self.collection)
      found = extract.oriented_descriptors(squares, new_flipped, self.config)
      flows = congeal.align(flows, found.match, found.centers, self._template, settings)
    old = self.collection
    joined = collection_lib.Collection(
        name=old.name,
        images=np.concatenate([old.images, squares]),
        names=old.names + names,
        masks=np.concatenate([old.masks_or_ones(), new_masks]),
        frames=tuple(old.frames or (None,) * len(old)) + tuple(frames),
        masks_from=old.masks_from,
        flipped=None if new_flipped is None else np.concatenate([old.flipped, new_flipped]))
    return Alignment(self.config,
                     joined,
                     self._state,
                     self.step,
                     jnp.concatenate([self._flows, flows]),
                     statistics=self._statistics,
                     template=self._template)

  def _new_masks(self, squares: np.ndarray, photos, frames, masks) -> np.ndarray:
    n, size = len(squares), self.size
    if masks is not None:
      if len(masks) != n:
        raise UserError(f'masks: {len(masks)} masks for {n} images')
      out = []
      for mask, photo in zip(masks, photos):
        mask = images_lib.read_mask(mask) if isinstance(mask, (str, os.PathLike)) else np.asarray(
            mask, np.float32)
        if mask.shape != photo.shape[:2]:
          raise UserError(f'masks: a {mask.shape[1]} x {mask.shape[0]} mask for a '
                          f'{photo.shape[1]} x {photo.shape[0]} photo')
        out.append(np.clip(images_lib.square(mask, size)[0], 0.0, 1.0))
      return np.stack(out).astype(np.float32)
    if self.collection.masks_from == 'coseg':
      from asic_jax.correspondences import extract  # pylint: disable=import-outside-toplevel
      both = np.concatenate([self.collection.images, squares])
      return extract.cosegment_images(both, self.config)[len(self.collection):]
    if self.collection.masks_from == 'dataset':
      warnings.warn('the collection brought its own masks; without masks= the new photos '
                    'are taken whole')
    return np.stack([frame.area(size) for frame in frames])  # the whole photos


def read_photos(images, what: str = 'images') -> tuple[list[np.ndarray], tuple[str, ...]]:
  """`[H, W, 3]` uint8 photos and their default names from a folder, files or arrays; errors
  name the argument `what`."""
  if isinstance(images, (str, os.PathLike)):
    folder = pathlib.Path(images)
    if not folder.is_dir():
      raise UserError(f'{what}: no folder {folder}')
    images = images_lib.list_images(folder)
    if not images:
      raise UserError(f'{what}: no image files in {folder} '
                      f'({", ".join(images_lib.IMAGE_SUFFIXES)})')
    images_lib.unique_stems(images, f'{what}={folder}')
  if not len(images):
    raise UserError(f'{what}: no images given')
  photos, names = [], []
  for i, item in enumerate(images):
    if isinstance(item, (str, os.PathLike)):
      photos.append(images_lib.read_rgb(item))
      names.append(pathlib.Path(item).stem)
    else:
      array = np.asarray(item)
      if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise UserError(f'images[{i}]: expected an [H, W, 3] uint8 array, got {array.dtype} '
                        f'{array.shape}')
      photos.append(array)
      names.append(f'new_{i}')
  return photos, tuple(names)
