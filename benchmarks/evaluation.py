"""Evaluation timing: collection flows, keypoint transfer of every pair, PCK and k-CyPCK.

  python -m benchmarks.evaluation --sizes=10,30,100 --img=64

A synthetic collection of N images (exact keypoints, every ordered pair scored: N (N - 1)
pairs) and an untrained model: the cost does not depend on the weights.
"""

import argparse
import time

import jax

from asic_jax import config_lib, optim
from asic_jax import flows as flows_lib
from asic_jax import train_state
from asic_jax.data import synthetic
from asic_jax.evaluation import protocol
from benchmarks import common


def bench(n: int, img: int) -> dict:
  c = config_lib.base_config('')
  c.data.img_size = img
  c.data.synthetic.num_images, c.data.synthetic.matches_per_pair = n, 8
  c.eval.cycle_tuples = 200
  collection = synthetic.make_synthetic(c.data.synthetic,
                                        size=img,
                                        num_parts=8,
                                        seed=0,
                                        max_per_image=4)
  state = train_state.init_state(c, optim.make_optimizer(c), img)
  flows = flows_lib.collection_flows(c, state, collection.images)  # compile
  jax.block_until_ready(flows)
  start = time.perf_counter()
  flows = jax.block_until_ready(flows_lib.collection_flows(c, state, collection.images))
  flows_s = time.perf_counter() - start
  transfer = protocol.flow_transfer(flows, collection.masks, c.eval.chunk)
  protocol.score(collection, transfer, c)  # compile
  start = time.perf_counter()
  results = protocol.score(collection, transfer, c)
  score_s = time.perf_counter() - start
  return dict(images=n,
              img=img,
              pairs=results['num_pairs'],
              keypoints=results['num_keypoints'],
              flows_s=flows_s,
              score_s=score_s,
              ms_per_pair=1000 * score_s /
              (results['num_pairs'] + c.eval.cycle_tuples * sum(c.eval.cycle_ks)),
              peak_rss_gb=common.peak_rss_gb())


COLUMNS = [('images', 'N'), ('img', 'px'), ('pairs', 'scored pairs'), ('keypoints', 'keypoints'),
           ('flows_s', 'flows s'), ('score_s', 'PCK + 2/3/4-CyPCK s'),
           ('ms_per_pair', 'ms per transfer'), ('peak_rss_gb', 'process peak RSS GB')]


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='10,30,100')
  parser.add_argument('--img', type=int, default=64)
  parser.add_argument('--out', default=None)
  args = parser.parse_args(argv)
  return common.report((bench(int(n), args.img) for n in args.sizes.split(',')), COLUMNS, args.out)


if __name__ == '__main__':
  main()
