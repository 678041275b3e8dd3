"""Figures of an alignment: canonical colour maps, dense warps, the learned grid, keypoint
transfers, pseudo-matches, parts and masks, and edit propagation (`asic_jax.edits`): what
`mode=visualize` and training (every `vis.every` steps and at the end) draw.

Frames: the collection's images are `[N, S, S, 3]` in [-1, 1] and its flows `[N, S, S, 2]`
hold each pixel's canonical (x, y) in [-1, 1] (`asic_jax.ops.sampling`). Figures are
drawn at `vis.size` = V: images, masks and flows are resized to V x V (bilinear,
corner-aligned) first; keypoint transfers are computed in the S frame (the evaluation's
protocol) and only drawn at V.

The canonical colour map (decision): the HSV colour wheel over the canonical square, hue
from the angle of (x, y) around the centre (red along +x, the image's right), saturation
from the radius (white at the centre, full on the unit circle), value from 1 on the unit
circle down to 0.75 in the square's corners, so every canonical point has its own colour.
An image's colour map samples the wheel (an image of V x V) bilinearly at its flow and
replaces the image's colours in proportion to its foreground mask (paper Fig. 3, 7).

Dense warps (paper §4.2, Fig. 4) carry every foreground pixel (mask >= 0.5) of a source
to the target pixel nearest in canonical space among target pixels with mask >= 0.1
(`transfer.nearest_pixels_chunked`, the keypoint transfer), where its colour is splatted; the
splatted colours are averaged where at least one pixel landed.
"""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asic_jax import congeal, drawing, edits, safe_io
from asic_jax import train_state
from asic_jax.data import collection as collection_lib
from asic_jax.errors import UserError
from asic_jax.evaluation import transfer
from asic_jax.ops import sampling, splat

Figures = dict[str, tuple[np.ndarray, str]]

_GRID_SAMPLES = 4  # images beside the mean image and the grid (paper Fig. 8)
_TRANSFER_TARGETS = 4  # targets in the keypoint-transfer figure
_MATCH_LINES = 48  # the most similar pseudo-matches drawn
_HIGHLIGHT = np.asarray([1.0, 0.0, 0.0], np.float32)  # the source's foreground in dense warps


def colour_wheel(coords: jax.Array) -> jax.Array:
  """The canonical colour map: `[..., 2]` canonical (x, y) to `[..., 3]` RGB in [0, 1]."""
  x, y = coords[..., 0], coords[..., 1]
  radius = jnp.hypot(x, y)
  hue = (jnp.arctan2(y, x) / (2 * jnp.pi)) % 1.0
  saturation = jnp.clip(radius, 0.0, 1.0)[..., None]
  value = 1.0 - 0.25 * jnp.clip((radius - 1.0) / (np.sqrt(2.0) - 1.0), 0.0, 1.0)[..., None]
  k = (jnp.asarray([5.0, 3.0, 1.0]) + 6.0 * hue[..., None]) % 6.0  # HSV to RGB
  return value * (1.0 - saturation * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0))


def wheel_image(size: int) -> jax.Array:
  """The colour wheel over the canonical square: `[size, size, 3]` in [0, 1]."""
  return colour_wheel(sampling.identity_grid(size, size))


@functools.partial(jax.jit, static_argnames=('size',))
def colour_maps(flows: jax.Array, size: int) -> jax.Array:
  """Each flow `[N, size, size, 2]` samples the colour wheel: `[N, size, size, 3]` in [0, 1]."""
  wheel = wheel_image(size)
  return jax.vmap(lambda flow: sampling.grid_sample(wheel, flow, padding='border'))(flows)


def overlay(images: jax.Array, colours: jax.Array, alpha: jax.Array) -> jax.Array:
  """`images` and `colours` `[..., H, W, 3]` blended with `alpha [..., H, W]`."""
  alpha = alpha[..., None]
  return images * (1.0 - alpha) + colours * alpha


@functools.partial(jax.jit, static_argnames=('size',))
def _resized(images, flows, masks, size):
  """Images in [0, 1], flows and masks of the collection at `size`."""
  resize = jax.vmap(lambda x: sampling.resize(x, size, size))
  return ((resize(images) + 1.0) / 2.0, resize(flows), resize(masks[..., None])[..., 0])


@jax.jit
def dense_warp(src_image: jax.Array, src_flow: jax.Array, src_mask: jax.Array, trg_flow: jax.Array,
               trg_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The source's foreground carried to the target through canonical space and splatted.

  Args:
    src_image: `[H, W, C]`.
    src_flow, trg_flow: `[H, W, 2]` canonical (x, y) of each pixel.
    src_mask, trg_mask: `[H, W]` soft foreground; source pixels with mask >= 0.5 are
      carried, to target pixels with mask >= 0.1.

  Returns:
    (warped `[H, W, C]`: the mean colour landed at each target pixel, 0 where none did,
    weight `[H, W]`: how many source pixels landed there).
  """
  height, width, channels = src_image.shape
  found = transfer.nearest_pixels_chunked(trg_flow, trg_mask, src_flow.reshape(-1, 2))
  # A target without any pixel above the transfer's threshold receives nothing.
  any_target = jnp.any(trg_mask >= transfer.MASK_THRESHOLD)
  weights = ((src_mask >= transfer.FOREGROUND) & any_target).reshape(-1)
  accumulated, weight = splat.splat(found, src_image.reshape(-1, channels), height, width, weights)
  return splat.normalize(accumulated, weight), weight


def parse_pairs(spec: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
  """`'a-b,c-d'` (image names or indices; a name may hold '-') to index pairs."""
  pairs = []
  for item in (s.strip() for s in spec.split(',') if s.strip()):
    for cut in (i for i, ch in enumerate(item) if ch == '-' and 0 < i < len(item) - 1):
      a = collection_lib.find_image(item[:cut], names)
      b = collection_lib.find_image(item[cut + 1:], names)
      if a is not None and b is not None:
        pairs.append((a, b))
        break
    else:
      raise UserError(f'vis.pairs: {item!r} is not two image names or indices joined by '
                      f"'-'; images: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
  return pairs


def choose_pairs(vis: ml_collections.ConfigDict, names: tuple[str, ...],
                 seed: int) -> list[tuple[int, int]]:
  """The pairs `vis.pairs` names, then `vis.random_pairs` distinct random ones (seeded),
  a != b, none repeating a pair already chosen (while any is left)."""
  pairs = parse_pairs(vis.pairs, names)
  wanted = len(pairs) + min(vis.random_pairs, len(names) * (len(names) - 1))
  rng = np.random.default_rng(seed)
  tries = 0
  while len(pairs) < wanted and tries < 100 * wanted:
    a, b = (int(i) for i in rng.choice(len(names), size=2, replace=False))
    tries += 1
    if (a, b) not in pairs:
      pairs.append((a, b))
  return pairs


def _image(x) -> np.ndarray:
  return drawing.to_uint8(np.asarray(x))


def _dense_warp_figure(view, pairs, names, step) -> tuple[np.ndarray, str]:
  images, flows, masks = view
  columns = [[], [], []]
  for a, b in pairs:
    warped, weight = dense_warp(images[a], flows[a], masks[a], flows[b], masks[b])
    highlight = overlay(images[a], _HIGHLIGHT, 0.5 * (masks[a] >= transfer.FOREGROUND))
    columns[0].append(_image(highlight))
    columns[1].append(_image(images[b]))
    columns[2].append(_image(overlay(images[b], warped, (weight > 0).astype(jnp.float32))))
  listed = ', '.join(f'{names[a]} → {names[b]}' for a, b in pairs)
  return drawing.tile(columns), (
      f'Dense warps{step} (paper Fig. 4), one pair per column: the source with its foreground '
      '(mask ≥ 0.5) in red (top), the target (middle), and every source foreground pixel '
      'carried to the target pixel nearest in canonical space (among target pixels with '
      f'mask ≥ 0.1) and splatted over the target (bottom). Pairs: {listed}.')


def _grid_figure(grid, view, collection, step) -> tuple[np.ndarray, str]:
  images = view[0]
  size = images.shape[1]
  grid = jnp.asarray(grid)
  rgb = sampling.resize(jnp.clip((grid[..., :3] + 1.0) / 2.0, 0.0, 1.0), size, size)
  alpha = sampling.resize(jax.nn.sigmoid(grid[..., 3:4]), size, size)[..., 0]
  shown = [_image(images[i]) for i in range(min(_GRID_SAMPLES, len(images)))]
  figure = drawing.tile([shown + [_image(images.mean(0)), _image(rgb), drawing.grey(alpha)]])
  return figure, (f'The learned canonical grid G{step} (paper Fig. 8): {len(shown)} images of '
                  f'the collection, the mean of all {len(collection)} images, G\'s colour '
                  'channels (RGB, [-1, 1] shown as [0, 1]) and its foreground probability '
                  f'(sigmoid of the 4th channel, white = 1), {grid.shape[0]} x {grid.shape[1]} '
                  f'shown at {size} x {size}.')


def _keypoint_figure(collection, flows, view, step) -> tuple[np.ndarray, str]:
  pairs = collection.eval_pairs
  rows = np.nonzero(pairs.src == pairs.src[0])[0][:_TRANSFER_TARGETS]
  masks = None if collection.masks is None else jnp.asarray(collection.masks)
  pred = np.asarray(
      transfer.transfer_pairs(flows, masks, jnp.asarray(pairs.src[rows]),
                              jnp.asarray(pairs.trg[rows]),
                              jnp.asarray(pairs.src_points[rows], jnp.float32)))
  images = view[0]
  scale = (images.shape[1] - 1) / (collection.size - 1)  # S frame to V frame
  src = int(pairs.src[rows[0]])
  ids = np.nonzero(pairs.visible[rows[0]])[0]
  colours = drawing.PALETTE[ids % len(drawing.PALETTE)]
  tiles = [
      drawing.draw_points(_image(images[src]), pairs.src_points[rows[0]][ids] * scale, colours)
  ]
  scores = []
  for e, row in enumerate(rows):
    ids = np.nonzero(pairs.visible[row])[0]
    colours = drawing.PALETTE[ids % len(drawing.PALETTE)]
    gt, guess = pairs.trg_points[row][ids], pred[e][ids].astype(np.float32)
    correct = np.linalg.norm(guess - gt, axis=-1) < 0.1 * pairs.thresholds[row]
    image = drawing.draw_points(_image(images[pairs.trg[row]]), gt * scale, colours, hollow=True)
    image = drawing.draw_lines(image, gt[~correct] * scale, guess[~correct] * scale,
                               [drawing.WRONG] * int((~correct).sum()))
    image = drawing.draw_points(image, guess * scale, colours,
                                [drawing.CORRECT if c else drawing.WRONG for c in correct])
    tiles.append(image)
    scores.append(f'{collection.names[pairs.trg[row]]} {int(correct.sum())}/{len(ids)}')
  caption = (f'Keypoint transfer{step} from {collection.names[src]} (left, ground-truth '
             'keypoints in their own colours) to the targets on its right: each target shows '
             'its ground truth as rings and the transferred keypoints as discs, outlined green '
             "when within 0.1 of that pair's PCK length L ('" + collection.threshold_kind +
             "'), red (with a line to the ground truth) otherwise. Correct@0.10 per target: " +
             ', '.join(scores) + '.')
  return drawing.tile([tiles]), caption


def _matches_figure(collection, view) -> tuple[np.ndarray, str] | None:
  real = np.nonzero(collection.matches[..., 4] > 0)
  if not len(real[0]):
    return None
  pair = int(real[0][0])
  matches = collection.matches[pair]
  keep = np.argsort(-matches[:, 4], kind='stable')[:min(_MATCH_LINES, int((matches[:,
                                                                                   4] > 0).sum()))]
  a, b = collection.pairs[pair]
  images = view[0]
  scale = (images.shape[1] - 1) / (collection.size - 1)
  colours = drawing.to_uint8(
      np.asarray(colour_wheel(sampling.pixel_to_normalized(matches[keep, :2], collection.size))))
  figure = drawing.side_by_side_matches(_image(images[a]), _image(images[b]),
                                        matches[keep, :2] * scale, matches[keep, 2:4] * scale,
                                        colours)
  return figure, (
      f'Pseudo-matches of the pair {collection.names[a]} – {collection.names[b]}: the '
      f'{len(keep)} most similar of its {int((matches[:, 4] > 0).sum())} matches, each line '
      'coloured by the colour wheel at its left end.')


def _parts_figure(collection, view, shown) -> tuple[np.ndarray, str] | None:
  images, _, masks = view
  rows = [[_image(images[i]) for i in shown]]
  what = []
  if collection.masks is not None:
    rows.append([drawing.grey(masks[i]) for i in shown])
    what.append('the foreground masks (white = 1)' if collection.masks_from != 'photo' else
                'their masks (white = 1: the whole photo, the square\'s padding excluded; '
                'features.masks=none)')
  if collection.parts is not None and not (collection.parts < collection.num_parts).any():
    what.append('no part maps (no foreground to cut into parts: the Parts term is idle)')
  elif collection.parts is not None:
    size = images.shape[1]
    picks = np.round(np.linspace(0, collection.size - 1, size)).astype(int)
    rows.append([
        drawing.colour_labels(collection.parts[i][np.ix_(picks, picks)], collection.num_parts)
        for i in shown
    ])
    what.append(f'the part maps ({collection.num_parts} parts, background black)')
  if len(rows) == 1:
    return None
  return drawing.tile(rows), f'The first {len(shown)} images and ' + ' and '.join(what) + '.'


def draw(config: ml_collections.ConfigDict,
         state: train_state.TrainState,
         collection: collection_lib.Collection,
         flows: jax.Array | None = None) -> Figures:
  """Every figure of the current alignment, as `{name: (uint8 [H, W, 3], caption)}`.

  Args:
    config: the run's config (`vis.*`, `seed`).
    state: the train state (its grid; its model when `flows` is None).
    collection: the collection.
    flows: `[N, S, S, 2]`, or None to compute them (`congeal.collection_flows`).

  Returns:
    'colour_wheel', 'colour_maps', 'dense_warps' (when any pair is asked for),
    'canonical_grid', and when the collection has them 'keypoint_transfer',
    'pseudo_matches' and 'parts_and_masks'.
  """
  if flows is None:
    flows, _ = congeal.collection_flows(config, state, collection)
  flows = jnp.asarray(flows)
  size, n = config.vis.size, len(collection)
  view = _resized(jnp.asarray(collection.images), flows, jnp.asarray(collection.masks_or_ones()),
                  size)
  images, small_flows, small_masks = view
  shown = list(range(min(config.vis.num_images, n)))
  step = f' at step {int(state.step)}'
  out = {}
  out['colour_wheel'] = (_image(wheel_image(size)), (
      'The canonical colour map: each point (x, y) of the canonical square [-1, 1]² gets a '
      'hue from its angle around the centre (red to the right, +x) and a saturation from its '
      'distance to the centre (white there); beyond the unit circle the colours darken.'))
  colours = colour_maps(small_flows[np.asarray(shown)], size)
  blended = overlay(images[np.asarray(shown)], colours, small_masks[np.asarray(shown)])
  out['colour_maps'] = (drawing.tile([[_image(x) for x in images[np.asarray(shown)]],
                                      [_image(x) for x in blended]]),
                        f'Canonical colour maps{step} (paper Fig. 3, 7): the first {len(shown)} '
                        'images (top) and, over their foreground, the colour of the canonical '
                        'point each pixel maps to (bottom): the same colour is the same '
                        'canonical point.')
  pairs = choose_pairs(config.vis, collection.names, config.seed)
  if pairs:
    out['dense_warps'] = _dense_warp_figure(view, pairs, collection.names, step)
  out['canonical_grid'] = _grid_figure(state.params['grid'], view, collection, step)
  if collection.eval_pairs is not None and len(collection.eval_pairs):
    out['keypoint_transfer'] = _keypoint_figure(collection, flows, view, step)
  if collection.matches is not None and (found := _matches_figure(collection, view)):
    out['pseudo_matches'] = found
  if found := _parts_figure(collection, view, shown):
    out['parts_and_masks'] = found
  return out


def edit_propagation(config: ml_collections.ConfigDict, collection: collection_lib.Collection,
                     flows: jax.Array) -> tuple[np.ndarray, tuple[np.ndarray, str]]:
  """Carries `config.edit.image` (painted where `config.edit.on` says) to every image
  (`edits.propagate`).

  Returns:
    (the edited images `[N, S, S, 3]` uint8, the 'edit_propagation' figure and caption).
  """
  edit = edits.load_edit(config.edit.image)
  on = edits.edit_index(str(config.edit.on), collection.names)
  canvas, edited = edits.propagate(edit, collection.images, flows, collection.masks_or_ones(), on)
  edited = np.asarray(edited)
  size = config.vis.size
  over_white = lambda rgba: _image(  # premultiplied RGBA over white, at V
      sampling.resize(rgba[..., :3] + 1.0 - rgba[..., 3:], size, size))
  shown = min(config.vis.num_images, len(collection))
  small = jax.vmap(lambda x: sampling.resize(x, size, size))(jnp.asarray(edited[:shown]))
  where = 'the canonical square' if on is None else f'image {collection.names[on]}'
  figure = drawing.tile([[over_white(edits.premultiply(jnp.asarray(edit))),
                          over_white(canvas)] + [_image(x) for x in small]])
  return _image(edited), (
      figure, f'Edit propagation: the edit ({pathlib.Path(config.edit.image).name}, painted '
      f'on {where}; left, over white), the edit in canonical space (second), and '
      f'the first {shown} images with the edit carried to them through canonical '
      f'space and composited over their foreground. Every image: edits/<name>.png.')


def save(figures: Figures, folder: str | pathlib.Path) -> None:
  """`folder/<name>.png` for each figure, and their captions in `folder/captions.json`
  (merged with captions already there)."""
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / 'captions.json'
  captions = safe_io.read_json(path, 'rebuilt from the figures written now') or {}
  for name, (image, caption) in figures.items():
    drawing.write_png(folder / f'{name}.png', image)
    captions[name] = caption
  safe_io.write_text_atomic(path, json.dumps(captions, indent=2, ensure_ascii=False))


def check_settings(config: ml_collections.ConfigDict,
                   collection: collection_lib.Collection) -> None:
  """Reads the figure and edit settings (`vis.pairs`, `edit.image`, `edit.on`) against the
  collection now, so that a mistake stops a training run before it trains, not after."""
  choose_pairs(config.vis, collection.names, config.seed)
  if config.edit.image:
    edits.load_edit(config.edit.image)
    edits.edit_index(str(config.edit.on), collection.names)
