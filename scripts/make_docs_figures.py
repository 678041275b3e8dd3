"""Makes the README's pictures from a trained run: its figures, in `docs/`.

  python scripts/make_docs_figures.py --workdir=runs/pfwillow_baselines_cpu/data.category=duck
  python scripts/make_docs_figures.py --steps 50 --out /tmp/docs   # a synthetic run, quickly

With `--workdir` (the README's pictures: the PF-WILLOW duck run of the "Accuracy on real
photos" sweep), runs `mode=visualize` on that run at `--size` px with a procedurally drawn
sticker as the edit; without, first trains `configs/tiny.py` at 64 px for `--steps` steps in a
temporary workdir. Copies one PNG of each figure kind (each under 300 KB) to the output
folder.
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
from asic_jax import config_lib, drawing, train, visualize

MAX_BYTES = 300_000
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


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', type=pathlib.Path, default=None, help='a trained run')
  parser.add_argument('--size', type=int, default=160, help='figure resolution (vis.size)')
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--out', type=pathlib.Path, default=ROOT / 'docs')
  args = parser.parse_args()
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
      train.train_and_evaluate(config, workdir)
    else:
      config, workdir = config_lib.base_config(), args.workdir
      config.vis.size, config.vis.num_images, config.vis.random_pairs = args.size, 6, 3
      config.data.root = str(ROOT.parent / 'shared' / 'data')
    sticker(pathlib.Path(tmp) / 'sticker.png')
    config.mode = 'visualize'
    config.edit.image = str(pathlib.Path(tmp) / 'sticker.png')
    visualize.visualize_run(config, workdir)
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


if __name__ == '__main__':
  main()
