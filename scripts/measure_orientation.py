"""Measures orientation-aware alignment (`features.orient`) on PF-WILLOW with planted mirrors.

  python scripts/measure_orientation.py --root=../shared/data [--trials=3] [--fraction=0.3]

PF-WILLOW's photos all face one way within a category (their keypoints say so: no pair of
photos fits better mirrored, tested by a similarity Procrustes with and without a
reflection). So the script plants mirror images: in each trial a seeded `fraction` of a
category's photos is mirrored, the decision (`orientation.decide`, the backbone and
`features.orient_min_t` of the `cpu` shape) is taken, and it counts the photos left facing
the minority way before and after (0 = all aligned; flips of the majority are as good). The
first row of each category is the real collection, nothing planted.
"""

import argparse

import numpy as np

from asic_jax import config_lib
from asic_jax.correspondences import extract, orientation
from asic_jax.data import loaders
from asic_jax.data import pairs as pairs_lib


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--root', required=True)
  parser.add_argument('--trials', type=int, default=3)
  parser.add_argument('--fraction', type=float, default=0.3)
  parser.add_argument('--categories', default='car,duck,motorbike,winebottle')
  args = parser.parse_args(argv)
  rng = np.random.default_rng(0)
  print(
      '| category | photos | trial | mirrored | flipped | facing the minority way: before | after |'
  )
  print('|---|---|---|---|---|---|---|')
  for category in args.categories.split(','):
    config = config_lib.base_config('cpu,recommended')
    config.data.name, config.data.category, config.data.root = 'pfwillow', category, args.root
    collection = loaders.load_collection(config)
    n = len(collection)
    pairs = pairs_lib.training_pairs(collection.images, 0, names=collection.names)
    for trial in range(args.trials + 1):
      planted = (rng.random(n) < args.fraction) if trial else np.zeros(n, bool)
      images = np.where(planted[:, None, None, None], collection.images[:, :, ::-1],
                        collection.images)
      areas = np.where(planted[:, None, None],
                       collection.photo_areas()[:, :, ::-1], collection.photo_areas())
      found = extract.extract_descriptors(images, config)
      mirrored = extract.mirrored_descriptors(images, config)
      foreground = extract.patch_foreground(areas, found.centers) >= 0.5
      flipped = orientation.decide(found.match,
                                   mirrored.match,
                                   foreground,
                                   pairs,
                                   min_t=config.features.orient_min_t).flipped
      facing = planted ^ flipped
      minority = lambda f: int(min(f.sum(), n - f.sum()))
      print(
          f'| {category} | {n} | {trial or "real"} | {int(planted.sum())} | '
          f'{int(flipped.sum())} | {minority(planted)} | {minority(facing)} |',
          flush=True)


if __name__ == '__main__':
  main()
