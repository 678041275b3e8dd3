"""`mode=map`: photos outside the collection (`map.path`) mapped by the trained run in
`workdir` (`asic_jax.api.Alignment.map`), into `WORKDIR/map/<folder name>/`."""

import json
import logging
import os
import pathlib

import numpy as np

from asic_jax import api, drawing, edits, explore, parallel, report, safe_io
from asic_jax.data import images as images_lib
from asic_jax.errors import UserError

log = logging.getLogger(__name__)


def run(config, workdir: str | os.PathLike) -> dict:
  """The photos of `map.path` mapped by the run in `workdir`; returns a summary.

  Writes `WORKDIR/map/<folder name>/`: `canonical.npz` (`canonical_<name>` `[H, W, 2]` and
  `mask_<name>` `[H, W]` of every new photo, at its own size), `colour_maps/<name>.png`,
  `explore.html` (the explorer of the collection and the new photos together, linked from the
  refreshed `report/index.html`), and with keypoints (`map.keypoints='SRC:points.json'`, points in
  SRC's pixels, or else the collection's first annotated image's own) `points.json` and
  `points/<name>.png` (them transferred onto every new photo); with `edit.image`,
  `edits/<name>.png`. Inputs are all read before anything is written; the folder is written
  beside its place and replaces the last run's whole (`safe_io.staged_folder`), so it never
  mixes two runs' photos.
  """
  if not config.map.path:
    raise UserError('config.map.path: give a folder of photos to map (--config.map.path=DIR)')
  folder = pathlib.Path(config.map.path)
  photos, names = api.read_photos(folder, 'config.map.path')
  trained = api.restored(config, workdir)
  known = len(trained)
  mapped = trained.map(photos, names=names)
  source, points = _map_keypoints(config, trained)
  edit = edits.load_edit(config.edit.image) if config.edit.image else None
  on = edits.edit_index(str(config.edit.on), mapped.names) if edit is not None else None
  out = pathlib.Path(workdir) / 'map' / folder.name
  new = list(range(known, len(mapped)))
  summary = dict(images=[mapped.names[i] for i in new], folder=str(out), step=trained.step)
  if not parallel.is_primary():
    return summary
  with safe_io.staged_folder(out) as stage:
    canonical = {mapped.names[i]: mapped.canonical(i) for i in new}
    arrays = {f'canonical_{name}': c for name, (c, _) in canonical.items()}
    arrays.update({f'mask_{name}': m for name, (_, m) in canonical.items()})
    safe_io.write_atomic(stage / 'canonical.npz',
                         lambda f: np.savez(f, names=np.asarray(list(canonical)), **arrays))
    for i in new:
      drawing.write_png(stage / 'colour_maps' / f'{mapped.names[i]}.png', mapped.colour_map(i))
    if points is not None:
      moved = {mapped.names[i]: mapped.transfer(points, source, i).tolist() for i in new}
      safe_io.write_text_atomic(
          stage / 'points.json',
          json.dumps(dict(source=trained.names[source], points=points.tolist(), transferred=moved),
                     indent=2))
      colours = drawing.PALETTE[np.arange(len(points)) % len(drawing.PALETTE)]
      for i in new:
        drawing.write_png(
            stage / 'points' / f'{mapped.names[i]}.png',
            drawing.draw_points(mapped.photo(i), np.asarray(moved[mapped.names[i]]), colours))
      summary['points'] = len(points)
    if edit is not None:
      edited = mapped.propagate(edit, 'canonical' if on is None else on)
      for i in new:
        drawing.write_png(stage / 'edits' / f'{mapped.names[i]}.png', edited[mapped.names[i]])
    c = trained.collection
    explore.write_explorer(mapped,
                           stage / 'explore.html',
                           back='../../report/index.html',
                           keypoints=c.keypoints,
                           visibility=c.visibility,
                           mapped_from=known,
                           title=f'ASIC run {pathlib.Path(workdir).absolute().name}: '
                           f'{folder.name} mapped')
  report.write_report(workdir)  # which links the new explorer
  log.info('%d photos of %s mapped by step %d: %s', len(new), folder, trained.step, out)
  return summary


def _map_keypoints(config, trained: api.Alignment) -> tuple[int, np.ndarray | None]:
  """(source image, `[K, 2]` points in its pixels) for `map.keypoints`, or (0, None)."""
  spec = config.map.keypoints
  if spec:
    name, sep, path = spec.rpartition(':')
    if not sep or not name:
      raise UserError(f'config.map.keypoints must be SRC_IMAGE:points.json, got {spec!r}')
    source = trained.index(name)
    try:
      points = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as e:
      raise UserError(f'config.map.keypoints: cannot read {path}: {e}') from None
    points = images_lib.numbers(points, f'config.map.keypoints ({path})')
    if points.ndim != 2 or points.shape[1] < 2:
      raise UserError(f'config.map.keypoints: {path} must hold [[x, y], ...], got {points.shape}')
    points = points[:, :2]
    trained._to_square(source, points, f'config.map.keypoints ({path})')  # pylint: disable=protected-access
    return source, points
  c = trained.collection
  if c.keypoints is None or not c.visibility.any():
    return 0, None
  source = int(np.argmax(c.visibility.any(axis=1)))
  seen = c.visibility[source]
  return source, trained.frame(source).to_original(c.keypoints[source][seen])
