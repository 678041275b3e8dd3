"""Nearest vs soft transfer on a synthetic collection with exact ground truth (issue 13 §3).

  python scripts/measure_soft_transfer.py            # ~10 minutes on a 2-core CPU

Trains configs/tiny.py's model on a 64-px synthetic collection of 10 images (12 exact
keypoints each) for 600 steps, every loss on, then scores the same flows with the paper's
nearest transfer and with the window soft-argmax for windows 1-3 and temperatures 0.25-4 px²:
PCK@0.01 ... 0.10 over the 90 ordered pairs, one JSON line per setting.
"""

import argparse
import json
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# pylint: disable=wrong-import-position
from asic_jax import config_lib, restore, train
from asic_jax import flows as flows_lib
from asic_jax import main as asic_main
from asic_jax.evaluation import protocol


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=600)
  args = parser.parse_args()
  c = config_lib.base_config()
  c.data.img_size, c.model.grid_size, c.loss.recon_size = 64, 64, 32
  c.data.synthetic.num_images, c.data.synthetic.matches_per_pair = 10, 32
  c.model.channel_multiplier, c.parts.num_parts = 0.125, 4
  c.train.num_steps, c.train.batch_size, c.train.log_every = args.steps, 8, 100
  c.checkpoint.every, c.vis.enabled = args.steps, False
  asic_main.setup_process(c)
  with tempfile.TemporaryDirectory() as workdir:
    train.train(c, workdir)
    config, collection, state, _ = restore.restore_run(None, workdir)
    flows = flows_lib.collection_flows(config, state, collection.images,
                                       flipped=collection.flipped)
    settings = [('nearest', 0, 1.0)] + [('soft', w, t) for w in (1, 2, 3)
                                        for t in (0.25, 0.5, 1.0, 2.0, 4.0)]
    for method, window, temperature in settings:
      fn = protocol.flow_transfer(flows,
                                  collection.masks,
                                  8,
                                  method=method,
                                  window=window,
                                  temperature=temperature)
      pck = protocol.score(collection, fn, config)['pck']
      print(json.dumps(dict(method=method, window=window, temperature=temperature, **pck)))


if __name__ == '__main__':
  main()
