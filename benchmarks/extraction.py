"""Extraction timing: DINO features per image, mutual NN of all pairs, co-segmentation and parts.

  python -m benchmarks.extraction                                   # CPU: reduced strides
  python -m benchmarks.extraction --size=256 --strides=2 --images=30   # the full shape (GPU)

The ViT has the full ViT-S/8 shape (384 wide, 6 heads, 12 blocks, patch 8) with random
weights, saved and loaded through the same path as `facebook/dino-vits8`; timings do not
depend on the values.
"""

import argparse
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import transformers

from asic_jax.correspondences import matching, segmentation
from asic_jax.data import collection as collection_lib
from asic_jax.models import dino
from benchmarks import common


def vit_s8(folder: str) -> None:
  config = transformers.ViTConfig(hidden_size=384,
                                  num_hidden_layers=12,
                                  num_attention_heads=6,
                                  intermediate_size=1536,
                                  patch_size=8,
                                  image_size=224,
                                  layer_norm_eps=1e-6)
  transformers.FlaxViTModel(config, seed=0, add_pooling_layer=False).save_pretrained(folder)


def bench(arch, params, *, size: int, stride: int, images: int, batch: int) -> dict:
  rng = np.random.default_rng(0)
  pictures = rng.uniform(-1, 1, (images, size, size, 3)).astype(np.float32)
  kwargs = dict(layers=(9, 11), stride=stride, saliency=True, query_chunk=1024)
  first = jnp.asarray(pictures[:batch])
  start = time.perf_counter()
  compiled = dino.extract_layers.lower(params, first, arch, **kwargs).compile()
  compile_s = time.perf_counter() - start
  match, seg, saliency = [], [], []
  start = time.perf_counter()
  for i in range(0, images, batch):
    chunk = pictures[i:i + batch]
    # The compiled program takes whole batches: pad the last one.
    padded = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], chunk.dtype)])
    facets, centers, sal, _ = compiled(params, jnp.asarray(padded))
    match.append(np.asarray(facets[9], np.float32)[:len(chunk)])
    seg.append(np.asarray(facets[11], np.float32)[:len(chunk)])
    saliency.append(np.asarray(sal)[:len(chunk)])
  features_s = time.perf_counter() - start
  match, seg, saliency = np.concatenate(match), np.concatenate(seg), np.concatenate(saliency)
  pairs = collection_lib.all_pairs(images)
  start = time.perf_counter()
  coseg = segmentation.cosegment(seg, saliency, centers, size)
  coseg_s = time.perf_counter() - start
  start = time.perf_counter()
  segmentation.part_maps(seg, coseg.foreground, coseg.masks, centers, 8)
  parts_s = time.perf_counter() - start
  start = time.perf_counter()
  matching.match_pairs(match, np.ones(saliency.shape, bool), centers, pairs)
  nn_s = time.perf_counter() - start
  return dict(size=size,
              stride=stride,
              grid=f'{centers.shape[0]}x{centers.shape[1]}',
              images=images,
              pairs=len(pairs),
              compile_s=compile_s,
              s_per_image=features_s / images,
              mutual_nn_s=nn_s,
              s_per_pair=nn_s / len(pairs),
              coseg_s=coseg_s,
              parts_s=parts_s,
              total_s=features_s + nn_s + coseg_s + parts_s,
              xla_memory_gb=common.compiled_memory_gb(compiled),
              device_peak_gb=common.device_peak_gb(),
              peak_rss_gb=common.peak_rss_gb())


COLUMNS = [('size', 'px'), ('stride', 'stride'), ('grid', 'patches'), ('images', 'N'),
           ('pairs', 'pairs'), ('compile_s', 'compile s'), ('s_per_image', 's/image (DINO)'),
           ('mutual_nn_s', 'mutual NN s (all pairs)'), ('s_per_pair', 's/pair'),
           ('coseg_s', 'co-seg s'), ('parts_s', 'parts s'), ('total_s', 'total s'),
           ('xla_memory_gb', 'XLA memory GB (DINO call)'), ('device_peak_gb', 'device peak GB'),
           ('peak_rss_gb', 'process peak RSS GB')]


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--size', type=int, default=256)
  parser.add_argument('--strides', default='8,4')
  parser.add_argument('--images', type=int, default=10)
  parser.add_argument('--batch', type=int, default=1, help='images per DINO call')
  parser.add_argument('--out', default=None)
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as folder:
    vit_s8(folder)
    arch, params = dino.load_vit(folder)
  return common.report(
      (bench(arch, params, size=args.size, stride=int(s), images=args.images, batch=args.batch)
       for s in args.strides.split(',')), COLUMNS, args.out)


if __name__ == '__main__':
  main()
