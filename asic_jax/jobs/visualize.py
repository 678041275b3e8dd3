"""`mode=visualize`: figures, edits, the explorer and the report of the latest (or `eval.step`)
checkpoint of the run in `workdir`."""

import logging
import pathlib

import ml_collections

from asic_jax import congeal, drawing, explore, figures, parallel, report, restore

log = logging.getLogger(__name__)


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Writes `figures/*.png` with `figures/captions.json`, `edits/<image name>.png` when
  `edit.image` is set, `report/explore.html` and `report/index.html`; returns a summary."""
  workdir = pathlib.Path(workdir)
  trained, collection, state, step = restore.restore_run(config, workdir)  # this vis and edit
  flows, _ = congeal.collection_flows(trained, state, collection)
  found = figures.draw(trained, state, collection, flows)
  edited = None
  if trained.edit.image:
    edited, found['edit_propagation'] = figures.edit_propagation(trained, collection, flows)
  summary = dict(step=int(step),
                 figures=sorted(found),
                 edits=0 if edited is None else len(edited),
                 report=str(workdir / 'report' / 'index.html'))
  if not parallel.is_primary():  # one process writes, as for every other output
    return summary
  if edited is not None:
    frames = collection.frames or (None,) * len(collection)
    for name, image, frame in zip(collection.names, edited, frames):
      # At the photo's own size and extent (the square's padding cut off), when it had one.
      drawing.write_png(workdir / 'edits' / f'{name}.png',
                        image if frame is None else frame.unsquare(image))
  figures.save(found, workdir / 'figures')
  restore.repair_config_json(workdir, step)
  explore.write_for_run(trained, collection, state, step, flows, workdir)
  index = report.write_report(workdir)
  log.info('Figures of step %d in %s; report %s', step, workdir / 'figures', index)
  return summary
