"""Makes the README's pictures from a trained run: its figures, in `docs/`.

  python scripts/make_docs_figures.py --workdir=runs/pfwillow_baselines_cpu/data.category=duck
  python scripts/make_docs_figures.py --steps 50 --out /tmp/docs   # a synthetic run, quickly

With `--workdir` (the README's pictures: the PF-WILLOW duck run of the "Accuracy on real
photos" sweep), runs `mode=visualize` on that run at `--size` px with a procedurally drawn
sticker as the edit; without, first trains `configs/tiny.py` at 64 px for `--steps` steps in a
temporary workdir. Copies one PNG of each figure kind (each under 300 KB) to the output
folder, and a screenshot of the run's explorer (`report/explore.html`) in headless chromium
with `--explorer_state` (the page's address fragment: every keypoint of the first photo
carried) as `explorer.png`. `--pictures explorer` makes that one alone (from the run's
`report/explore.html`, written first if missing), without running `mode=visualize`.
"""

import argparse
import importlib.util
import logging
import pathlib
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# pylint: disable=wrong-import-position
from asic_jax import config_lib, drawing
from asic_jax.jobs import train as train_job
from asic_jax.jobs import visualize as visualize_job

MAX_BYTES = 300_000
EXPLORER_VIEW = (1400, 1040)  # CSS pixels of the screenshot's window
# docs/<name>.png <- figures of the run (tiled left to right when several).
PICTURES = {
    'colour_maps': ('figures/colour_wheel.png', 'figures/colour_maps.png'),
    'dense_warps': ('figures/dense_warps.png',),
    'canonical_grid': ('figures/canonical_grid.png',),
    'keypoint_transfer': ('figures/keypoint_transfer.png',),
    'pseudo_matches': ('figures/pseudo_matches.png',),
    'parts_and_masks': ('figures/parts_and_masks.png',),
    'edit_propagation': ('figures/edit_propagation.png',),
    'pck_curves': ('report/pck_curves.png',),
}


def tiny_config(steps: int):
  spec = importlib.util.spec_from_file_location('tiny', ROOT / 'configs' / 'tiny.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config('')
  c.data.img_size = 64
  c.model.grid_size = 64
  c.loss.recon_size = 32
  c.train.num_steps = steps
  c.train.log_every = 10
  c.checkpoint.every = steps
  c.vis.size = 64
  c.vis.num_images = 6
  c.vis.random_pairs = 3
  c.eval.cycle_tuples = 50
  return c


def sticker(path: pathlib.Path, size: int = 96) -> None:
  """A round RGBA sticker: a yellow disc with a blue stripe and a red dot, transparent
  elsewhere."""
  image = Image.new('RGBA', (size, size), (0, 0, 0, 0))
  draw = ImageDraw.Draw(image)
  draw.ellipse((size * 0.3, size * 0.3, size * 0.7, size * 0.7), fill=(255, 210, 0, 255))
  draw.rectangle((size * 0.47, size * 0.3, size * 0.53, size * 0.7), fill=(20, 60, 230, 255))
  draw.ellipse((size * 0.56, size * 0.4, size * 0.64, size * 0.48), fill=(230, 20, 20, 255))
  image.save(path)


def explorer_screenshot(workdir: pathlib.Path, state: str, path: pathlib.Path) -> None:
  """`workdir`'s explorer in headless chromium at `state` (the page's address fragment; `{first}`
  is the first photo's name), the window's top as a PNG at `path` (palette-quantised if over
  `MAX_BYTES`)."""
  sys.path.insert(0, str(ROOT / 'tests'))
  import browser  # pylint: disable=import-outside-toplevel  (tests/browser.py)
  page_path = workdir / 'report' / 'explore.html'
  if not page_path.is_file():
    import asic_jax  # pylint: disable=import-outside-toplevel
    from asic_jax import explore  # pylint: disable=import-outside-toplevel
    explore.write_explorer(asic_jax.load(workdir),
                           page_path,
                           back='index.html',
                           title=f'ASIC run {workdir.absolute().name}: explorer')
  with browser.Chromium(*EXPLORER_VIEW) as chromium:
    page = chromium.open(page_path.as_uri())
    first = page.wait_for('document.body.dataset.ready') and page.evaluate(
        'document.querySelector(".card").dataset.name')
    page = chromium.open(page_path.as_uri() + '#' + state.format(first=first))
    page.wait_for('document.body.dataset.ready')
    bottom = page.evaluate('document.getElementById("photos").getBoundingClientRect().bottom')
    page.screenshot(path, full_page=False)
  image = Image.open(path).convert('RGB')
  image = image.crop((0, 0, image.width, min(image.height, int(bottom))))
  image.save(path, optimize=True)
  if path.stat().st_size > MAX_BYTES:  # photos: a palette of their own, dithered
    image.quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
  print(f'{path}: {image.width} x {image.height}, {path.stat().st_size} bytes')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', type=pathlib.Path, default=None, help='a trained run')
  parser.add_argument('--size', type=int, default=160, help='figure resolution (vis.size)')
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--out', type=pathlib.Path, default=ROOT / 'docs')
  parser.add_argument('--pictures', default='all', help="'all', or 'explorer' alone")
  parser.add_argument('--explorer_state',
                      default='src={first}&all=1&size=208',
                      help="the explorer's address fragment for its screenshot")
  args = parser.parse_args()
  if args.pictures == 'explorer':
    args.out.mkdir(parents=True, exist_ok=True)
    explorer_screenshot(args.workdir, args.explorer_state, args.out / 'explorer.png')
    return
  # force: absl has put its own handler on the root logger already.
  logging.basicConfig(level=logging.WARNING,
                      format='%(asctime)s %(message)s',
                      datefmt='%H:%M:%S',
                      force=True)
  logging.getLogger('asic_jax').setLevel(logging.INFO)
  with tempfile.TemporaryDirectory(prefix='asic-docs-') as tmp:
    if args.workdir is None:
      config = tiny_config(args.steps)
      workdir = pathlib.Path(tmp) / 'run'
      train_job.run(config, workdir)
    else:
      config, workdir = config_lib.base_config(), args.workdir
      config.vis.size, config.vis.num_images, config.vis.random_pairs = args.size, 6, 3
      config.data.root = str(ROOT.parent / 'shared' / 'data')
    sticker(pathlib.Path(tmp) / 'sticker.png')
    config.mode = 'visualize'
    config.edit.image = str(pathlib.Path(tmp) / 'sticker.png')
    visualize_job.run(config, workdir)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, sources in PICTURES.items():
      picture = drawing.tile([[np.asarray(Image.open(workdir / s).convert('RGB')) for s in sources]
                             ])
      path = args.out / f'{name}.png'
      drawing.write_png(path, picture)
      size = path.stat().st_size
      if size > MAX_BYTES:
        raise SystemExit(f'{path} is {size} bytes, over {MAX_BYTES}')
      print(f'{path}: {picture.shape[1]} x {picture.shape[0]}, {size} bytes')
    explorer_screenshot(workdir, args.explorer_state, args.out / 'explorer.png')


if __name__ == '__main__':
  main()
