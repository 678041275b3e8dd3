"""Extraction timing: features per image, mutual NN of all pairs, co-segmentation and parts.

  python -m benchmarks.extraction                                   # CPU: reduced strides
  python -m benchmarks.extraction --size=256 --strides=2 --images=30   # the full shape (GPU)
  python -m benchmarks.extraction --backbone=vgg16 --strides=4 --size=128   # VGG-16

The ViT has the full ViT-S/8 shape (384 wide, 6 heads, 12 blocks, patch 8) with random
weights, saved and loaded through the same path as `facebook/dino-vits8`; timings do not
depend on the values. VGG-16 is the real bundled trunk (relu4_3 matches, relu5_3 parts, no
co-segmentation: it has no saliency).
"""

import argparse
import tempfile
import time

import jax.numpy as jnp
import numpy as np
import transformers

from asic_jax.correspondences import matching, segmentation
from asic_jax.data import pairs as pairs_lib
from asic_jax.models import dino, vgg
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
  start = time.perf_counter()
  coseg = segmentation.cosegment(seg, saliency, centers, size)
  coseg_s = time.perf_counter() - start
  return _after_features('dino', match, seg, centers, coseg.foreground, coseg.masks,
                         size=size, stride=stride, compile_s=compile_s, features_s=features_s,
                         coseg_s=coseg_s, compiled=compiled)


def bench_vgg(params, *, size: int, stride: int, images: int, batch: int) -> dict:
  """The VGG-16 backbone: relu4_3 and relu5_3 in one pass; whole images (no co-segmentation)."""
  rng = np.random.default_rng(0)
  pictures = rng.uniform(-1, 1, (images, size, size, 3)).astype(np.float32)
  layers = ('relu4_3', 'relu5_3')
  start = time.perf_counter()
  compiled = vgg.extract_layers.lower(params, jnp.asarray(pictures[:batch]), layers=layers,
                                      stride=stride).compile()
  compile_s = time.perf_counter() - start
  match, seg = [], []
  start = time.perf_counter()
  for i in range(0, images, batch):
    chunk = pictures[i:i + batch]
    padded = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], chunk.dtype)])
    found, centers = compiled(params, jnp.asarray(padded))
    match.append(np.asarray(found['relu4_3'])[:len(chunk)])
    seg.append(np.asarray(found['relu5_3'])[:len(chunk)])
  features_s = time.perf_counter() - start
  match, seg = np.concatenate(match), np.concatenate(seg)
  foreground = np.ones(match.shape[:3], bool)
  return _after_features('vgg16', match, seg, np.asarray(centers), foreground,
                         np.ones((images, size, size), np.float32), size=size, stride=stride,
                         compile_s=compile_s, features_s=features_s, coseg_s=None,
                         compiled=compiled)


def _after_features(backbone, match, seg, centers, foreground, masks, *, size, stride, compile_s,
                    features_s, coseg_s, compiled) -> dict:
  """Parts and the mutual NN of all pairs, and the record of one shape."""
  images = len(match)
  pairs = pairs_lib.all_pairs(images)
  start = time.perf_counter()
  segmentation.part_maps(seg, foreground, masks, centers, 8)
  parts_s = time.perf_counter() - start
  start = time.perf_counter()
  matching.match_pairs(match, np.ones(match.shape[:3], bool), centers, pairs)
  nn_s = time.perf_counter() - start
  return dict(backbone=backbone,
              size=size,
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
              total_s=features_s + nn_s + (coseg_s or 0.0) + parts_s,
              xla_memory_gb=common.compiled_memory_gb(compiled),
              device_peak_gb=common.device_peak_gb(),
              peak_rss_gb=common.peak_rss_gb())


COLUMNS = [('backbone', 'backbone'), ('size', 'px'), ('stride', 'stride'), ('grid', 'patches'),
           ('images', 'N'),
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
  parser.add_argument('--backbone', default='dino', choices=('dino', 'vgg16'))
  parser.add_argument('--out', default=None)
  args = parser.parse_args(argv)
  if args.backbone == 'vgg16':
    params = vgg.load_vgg()
    return common.report(
        (bench_vgg(params, size=args.size, stride=int(s), images=args.images, batch=args.batch)
         for s in args.strides.split(',')), COLUMNS, args.out)
  with tempfile.TemporaryDirectory() as folder:
    vit_s8(folder)
    arch, params = dino.load_vit(folder)
  return common.report(
      (bench(arch, params, size=args.size, stride=int(s), images=args.images, batch=args.batch)
       for s in args.strides.split(',')), COLUMNS, args.out)


if __name__ == '__main__':
  main()
