"""DINO ViT descriptors: Hugging Face weights, our own forward.

We reproduce dino-vit-features (the `ViTExtractor` that ASIC's released code carries) on
Hugging Face checkpoints (`facebook/dino-vits8` and kin): the patch conv applied at a stride
below the patch size, the position embeddings resized with PyTorch's bicubic exactly as its
`_fix_pos_enc` calls it, the key / query / value / token facets in its channel order, its
log-binned descriptors and its CLS-attention saliency. `transformers.FlaxViTModel` only loads
the weights: its own forward can neither change the stride nor resize the embeddings.

Frames: images `[B, H, W, 3]` in [-1, 1] (asic_jax's image range). At stride `s` a patch size
`p` gives a grid of `h = 1 + (H - p) / s` rows and `w = 1 + (W - p) / s` columns; patch
`(i, j)` (row, column) is centred at pixel `(x, y) = (s j + p / 2, s i + p / 2)`, the
convention of DESIGN §7 (s i + 4 for p = 8), in the image's pixel frame of
`asic_jax.ops.sampling`.

Usage:
  arch, params = load_vit('facebook/dino-vits8')
  features = extract(params, images, arch, layer=9, facet='key', stride=2)
"""

import dataclasses
import functools
import importlib.util
import logging
import math
from typing import Literal, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import transformers
from transformers.modeling_flax_utils import ACT2FN

DEFAULT_MODEL = 'facebook/dino-vits8'


class _QuietTransformers(logging.Filter):
  """Drops two notices of transformers that are not the user's to act on: its Flax classes'
  deprecation (we pin 4.57.6, the last release with them) and the unused pooler weights of
  a checkpoint loaded without its pooling layer (we never use it)."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if 'TensorFlow and JAX classes are deprecated' in message:
      return False
    return not ('were not used' in message and 'pooler' in message)


logging.getLogger('transformers.modeling_flax_utils').addFilter(_QuietTransformers())
# dino-vit-features normalises with ImageNet statistics for every DINO model.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The heads `extract_saliency_maps` averages (chosen by its authors for ViT-S/8).
SALIENCY_HEADS = (0, 2, 4, 5)
# PyTorch's bicubic kernel (Keys, a = -0.75); jax.image.resize uses a = -0.5.
_CUBIC_A = -0.75

Facet = Literal['key', 'query', 'value', 'token']
FACETS = ('key', 'query', 'value', 'token')


@dataclasses.dataclass(frozen=True)
class ViTArch:
  """The static description of a ViT checkpoint; hashable, so a static argument of `jit`.

  Attributes:
    patch_size: side `p` of a patch, in pixels.
    hidden_size: token width `D`.
    num_heads: attention heads; `D / num_heads` channels each.
    num_layers: transformer blocks.
    position_grid: side `n` of the stored `n x n` grid of patch position embeddings.
    layer_norm_eps: the epsilon of every LayerNorm.
    hidden_act: the MLP activation's name in `transformers`' ACT2FN.
    position_offset: how the position grid is resized (`interpolate_positions`): 0.1 is
      dino-vit-features' `scale_factor = (rows + 0.1) / n` (DINO), 0 resizes to the grid's
      size as transformers' PyTorch DINOv2 does.
  """
  patch_size: int
  hidden_size: int
  num_heads: int
  num_layers: int
  position_grid: int
  layer_norm_eps: float
  hidden_act: str = 'gelu'
  position_offset: float = 0.1

  @classmethod
  def from_config(cls, config: transformers.ViTConfig) -> 'ViTArch':
    """The architecture of a `transformers.ViTConfig`."""
    if config.hidden_size % config.num_attention_heads:
      raise ValueError(f'config: hidden_size {config.hidden_size} does not divide by '
                       f'num_attention_heads {config.num_attention_heads}')
    if config.num_channels != 3:
      raise ValueError(f'config: num_channels must be 3 (RGB), got {config.num_channels}')
    if config.hidden_act not in ACT2FN:
      raise ValueError(f'config: unknown hidden_act {config.hidden_act!r}')
    return cls(patch_size=int(config.patch_size),
               hidden_size=int(config.hidden_size),
               num_heads=int(config.num_attention_heads),
               num_layers=int(config.num_hidden_layers),
               position_grid=int(config.image_size) // int(config.patch_size),
               layer_norm_eps=float(config.layer_norm_eps),
               hidden_act=str(config.hidden_act))


class DinoFeatures(NamedTuple):
  """What `extract` returns.

  Attributes:
    descriptors: `[B, h, w, C]`, the facet at every patch (CLS dropped); `C = D`, or
      `(1 + 8 k) D` with `k` log-bin hierarchies.
    centers: `[h, w, 2]`, (x, y) pixel centre of every patch in the image frame.
    cls: `[B, D]`, the facet of the CLS token, or None unless `include_cls`.
    saliency: `[B, h, w]` in [0, 1], or None unless `saliency`.
  """
  descriptors: jax.Array
  centers: jax.Array
  cls: jax.Array | None
  saliency: jax.Array | None


def load_vit(name_or_path: str = DEFAULT_MODEL) -> tuple[ViTArch, dict]:
  """Loads a Hugging Face ViT checkpoint: its architecture and its parameters.

  Safetensors and Flax weights load without torch; a repository or folder with only
  `pytorch_model.bin` needs torch (`from_pt=True`). Offline, set `HF_HUB_OFFLINE=1` and pass a
  cached hub id or a folder written by `save_pretrained`.

  Args:
    name_or_path: a hub id (`facebook/dino-vits8`, `-vits16`, `-vitb8`, `-vitb16`) or a folder.

  Returns:
    `(arch, params)`: the static `ViTArch` and the parameter tree of `FlaxViTModule`
    (`embeddings`, `encoder`, `layernorm`), arrays on the default device.
  """
  model, params = from_pretrained(transformers.FlaxViTModel, name_or_path, add_pooling_layer=False)
  return ViTArch.from_config(model.config), params


def from_pretrained(model_class, name_or_path: str, **kwargs):
  """`model_class.from_pretrained(name_or_path, **kwargs)` (a transformers Flax class), and
  its parameters as a plain tree of arrays on the default device.

  PyTorch-format safetensors convert without torch; `pytorch_model.bin` needs it (a clear
  error otherwise, saying how to convert once).
  """
  # `_do_init=False` would skip a random init, but transformers cannot then convert
  # PyTorch-format safetensors (what PyTorch's save_pretrained writes).
  try:
    model = model_class.from_pretrained(name_or_path, **kwargs)
  except OSError as error:
    if 'from_pt=True' not in str(error):
      raise
    if importlib.util.find_spec('torch') is None:
      raise OSError(
          f'name_or_path: {name_or_path!r} has only PyTorch weights (pytorch_model.bin) and torch '
          f'is not installed. Install torch, or convert once where it is: '
          f'{model_class.__name__}.from_pretrained(name, from_pt=True).save_pretrained(folder), '
          'then pass that folder.') from error
    model = model_class.from_pretrained(name_or_path, from_pt=True, **kwargs)
  return model, jax.device_put(jax.tree.map(np.asarray, flax.core.unfreeze(model.params)))


def grid_size(height: int, width: int, patch_size: int, stride: int) -> tuple[int, int]:
  """Patch grid `(h, w)` of an image `height x width` at `stride`; clear errors otherwise."""
  if stride < 1 or patch_size % stride:
    raise ValueError(f'stride must divide the patch size {patch_size}, got {stride}')
  for name, side in (('height', height), ('width', width)):
    if side < patch_size or (side - patch_size) % stride:
      raise ValueError(f'stride: image {name} {side} minus the patch size {patch_size} must be '
                       f'a non-negative multiple of the stride {stride}')
  return 1 + (height - patch_size) // stride, 1 + (width - patch_size) // stride


def patch_centers(rows: int, cols: int, patch_size: int, stride: int) -> jax.Array:
  """`[rows, cols, 2]`: (x, y) = (stride j + p / 2, stride i + p / 2) pixels of patch (i, j)."""
  xs = stride * jnp.arange(cols, dtype=jnp.float32) + patch_size / 2
  ys = stride * jnp.arange(rows, dtype=jnp.float32) + patch_size / 2
  return jnp.stack(jnp.meshgrid(xs, ys, indexing='xy'), axis=-1)


def _cubic_matrix(out_size: int, in_size: int, ratio: np.float32) -> jax.Array:
  """`[out_size, in_size]` weights of PyTorch's 1-D bicubic (align_corners=False) at the
  float32 input-to-output `ratio`.

  As ATen computes it: source (i + 0.5) ratio - 0.5 in float32, index floor(source) (at most
  in_size - 1), fraction clipped to [0, 1], the 4 taps at index - 1 ... index + 2 clamped into
  the input.
  """
  source = ratio * (jnp.arange(out_size, dtype=jnp.float32) + 0.5) - 0.5
  index = jnp.minimum(jnp.floor(source), in_size - 1)
  t = jnp.clip(source - index, 0.0, 1.0)
  a = _CUBIC_A

  def near(d):  # |d| <= 1
    return ((a + 2) * d - (a + 3)) * d * d + 1

  def far(d):  # 1 < |d| < 2
    return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

  weights = jnp.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)
  taps = jnp.clip(index.astype(jnp.int32)[:, None] + jnp.arange(-1, 3), 0, in_size - 1)
  return (jax.nn.one_hot(taps, in_size, dtype=jnp.float32) * weights[..., None]).sum(axis=1)


def interpolate_positions(positions: jax.Array,
                          rows: int,
                          cols: int,
                          offset: float = 0.1) -> jax.Array:
  """Resizes an `[n, n, D]` grid of position embeddings to `[rows, cols, D]`.

  With `offset` 0.1, dino-vit-features' `F.interpolate(mode='bicubic', align_corners=False,
  scale_factor=((rows + 0.1) / n, (cols + 0.1) / n), recompute_scale_factor=False)` (DINO);
  with 0, `F.interpolate(size=(rows, cols), mode='bicubic', align_corners=False)`, which
  transformers' PyTorch DINOv2 calls (ATen's ratio is then float32(n) / rows). Applied per
  axis; the native `n x n` grid is returned unchanged, as in both.
  """
  n = positions.shape[0]
  if (rows, cols) == (n, n):
    return positions

  def ratio(size):
    if offset:
      return np.float32(1.0 / ((size + offset) / n))
    return np.float32(n) / np.float32(size)

  along_rows = _cubic_matrix(rows, n, ratio(rows))
  along_cols = _cubic_matrix(cols, positions.shape[1], ratio(cols))
  return jnp.einsum('in,nmd,jm->ijd',
                    along_rows,
                    positions.astype(jnp.float32),
                    along_cols,
                    precision=jax.lax.Precision.HIGHEST)


def _layer_norm(x: jax.Array, p: dict, eps: float) -> jax.Array:
  """LayerNorm over the last axis, statistics in float32."""
  x32 = x.astype(jnp.float32)
  mean = x32.mean(axis=-1, keepdims=True)
  var = jnp.square(x32 - mean).mean(axis=-1, keepdims=True)
  y = (x32 - mean) * jax.lax.rsqrt(var + eps)
  return (y * p['scale'] + p['bias']).astype(x.dtype)


def _dense(x: jax.Array, p: dict) -> jax.Array:
  y = x @ p['kernel']
  return y + p['bias'] if 'bias' in p else y


def _heads(x: jax.Array, num_heads: int) -> jax.Array:
  """`[B, T, D]` -> `[B, T, heads, D / heads]`, head-major channels as the checkpoint has."""
  return x.reshape(*x.shape[:-1], num_heads, -1)


def _attention(q: jax.Array, k: jax.Array, v: jax.Array, query_chunk: int) -> jax.Array:
  """Softmax attention, `query_chunk` queries at a time: q, k, v `[B, T, heads, d]` -> same.

  The `[B, heads, chunk, T]` logits of one chunk are all that is live at once, which keeps a
  15,626-token image (256 px, stride 2) within a few GB.
  """
  batch, tokens, heads, depth = q.shape
  q = q * jnp.asarray(depth**-0.5, q.dtype)

  def attend(q_chunk):
    logits = jnp.einsum('bqhd,bkhd->bhqk', q_chunk, k).astype(jnp.float32)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum('bhqk,bkhd->bqhd', probs, v)

  if tokens <= query_chunk:
    return attend(q)
  chunks = -(-tokens // query_chunk)
  q = jnp.pad(q, ((0, 0), (0, chunks * query_chunk - tokens), (0, 0), (0, 0)))
  q = q.reshape(batch, chunks, query_chunk, heads, depth).swapaxes(0, 1)
  out = jax.lax.map(attend, q).swapaxes(0, 1)
  return out.reshape(batch, chunks * query_chunk, heads, depth)[:, :tokens]


def _qkv(x_norm: jax.Array, p: dict, num_heads: int) -> dict[str, jax.Array]:
  """The attention projections of a normalised `[B, T, D]`: each `[B, T, heads, d]`."""
  attn = p['attention']['attention']
  return {name: _heads(_dense(x_norm, attn[name]), num_heads) for name in ('query', 'key', 'value')}


def _scaled(x: jax.Array, p: dict, name: str) -> jax.Array:
  """`x` times a block's LayerScale `name` (DINOv2's `lambda1`, as PyTorch applies it); DINO's
  blocks have none."""
  return x * p[name]['lambda1'] if name in p else x


def _block_rest(x: jax.Array, qkv: dict, p: dict, arch: ViTArch, query_chunk: int) -> jax.Array:
  """The rest of a pre-norm block once its projections are known: `[B, T, D]` -> same.

  The MLP is the ViT's (`intermediate`, `output`: dense, activation, dense) or, where the
  block holds `swiglu` (DINOv2 giant), SwiGLU: `weights_out(silu(a) * b)`, `a, b` the two
  halves of `weights_in`.
  """
  context = _attention(qkv['query'], qkv['key'], qkv['value'], query_chunk)
  context = context.reshape(x.shape)
  x = x + _scaled(_dense(context, p['attention']['output']['dense']), p, 'layer_scale1')
  hidden = _layer_norm(x, p['layernorm_after'], arch.layer_norm_eps)
  if 'swiglu' in p:
    gate, value = jnp.split(_dense(hidden, p['swiglu']['weights_in']), 2, axis=-1)
    hidden = _dense(jax.nn.silu(gate) * value, p['swiglu']['weights_out'])
  else:
    hidden = ACT2FN[arch.hidden_act](_dense(hidden, p['intermediate']['dense']))
    hidden = _dense(hidden, p['output']['dense'])
  return x + _scaled(hidden, p, 'layer_scale2')


def _embed(params: dict, images: jax.Array, arch: ViTArch, stride: int, dtype) -> jax.Array:
  """Images `[B, H, W, 3]` in [-1, 1] -> tokens `[B, 1 + h w, D]` in `dtype`, CLS first."""
  mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
  std = jnp.asarray(IMAGENET_STD, jnp.float32)
  pixels = (((images.astype(jnp.float32) + 1) / 2 - mean) / std).astype(dtype)
  conv = params['embeddings']['patch_embeddings']['projection']
  patches = jax.lax.conv_general_dilated(
      pixels,
      conv['kernel'].astype(dtype), (stride, stride),
      'VALID',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + conv['bias'].astype(dtype)
  batch, rows, cols, width = patches.shape
  positions = params['embeddings']['position_embeddings'][0].astype(jnp.float32)
  grid = positions[1:].reshape(arch.position_grid, arch.position_grid, width)
  patches = patches + interpolate_positions(grid, rows, cols, arch.position_offset).astype(dtype)
  cls = (params['embeddings']['cls_token'][0] + positions[:1]).astype(dtype)
  cls = jnp.broadcast_to(cls, (batch, 1, width))
  return jnp.concatenate([cls, patches.reshape(batch, rows * cols, width)], axis=1)


def _avg_pool(x: jax.Array, size: int) -> jax.Array:
  """`AvgPool2d(size, stride 1, padding size // 2, count_include_pad=False)` of `[B, h, w, C]`."""
  if size == 1:
    return x
  pad = size // 2
  window = (1, size, size, 1)
  padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))

  def pool(v):
    return jax.lax.reduce_window(v, 0.0, jax.lax.add, window, (1, 1, 1, 1), padding)

  return pool(x) / pool(jnp.ones((1, *x.shape[1:3], 1), x.dtype))


def log_bin(x: jax.Array, hierarchy: int) -> jax.Array:
  """dino-vit-features' `_log_bin`: `[B, h, w, C]` -> `[B, h, w, (1 + 8 hierarchy) C]`.

  Level k averages 3^k x 3^k windows (padding not counted) and reads them at the 3 x 3
  offsets {-3^k, 0, 3^k}^2 (the centre only at level 0), rows then columns; an offset outside
  the grid reads the nearest window inside it. Bins are concatenated in that order.
  """
  rows = jnp.arange(x.shape[1])
  cols = jnp.arange(x.shape[2])
  bins = []
  for level in range(hierarchy):
    size = 3**level
    pooled = _avg_pool(x, size)
    for di in (-size, 0, size):
      for dj in (-size, 0, size):
        if level and di == dj == 0:
          continue
        r = jnp.clip(rows + di, 0, x.shape[1] - 1)
        c = jnp.clip(cols + dj, 0, x.shape[2] - 1)
        bins.append(pooled[:, r][:, :, c])
  return jnp.concatenate(bins, axis=-1)


def _cls_attention(qkv: dict, heads: tuple[int, ...]) -> jax.Array:
  """Min-max normalised mean over `heads` of the CLS row of attention: `[B, T - 1]`, float32."""
  q = qkv['query'][:, 0].astype(jnp.float32)  # [B, heads, d]
  k = qkv['key'].astype(jnp.float32)  # [B, T, heads, d]
  logits = jnp.einsum('bhd,bkhd->bhk', q, k) / math.sqrt(q.shape[-1])
  probs = jax.nn.softmax(logits, axis=-1)[:, list(heads), 1:].mean(axis=1)
  low = probs.min(axis=-1, keepdims=True)
  span = probs.max(axis=-1, keepdims=True) - low
  return jnp.where(span > 0, (probs - low) / jnp.where(span > 0, span, 1.0), 0.0)


def _check(images, arch, *, layer, facet, stride, include_cls, bin_hierarchy, saliency_heads,
           query_chunk) -> tuple[int, int]:
  """Validates `extract`'s arguments; returns the patch grid (h, w)."""
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f'images must be [B, H, W, 3], got shape {images.shape}')
  if facet not in FACETS:
    raise ValueError(f'facet must be one of {FACETS}, got {facet!r}')
  if not 0 <= layer < arch.num_layers:
    raise ValueError(f'layer must be in [0, {arch.num_layers - 1}], got {layer}')
  if bin_hierarchy < 0:
    raise ValueError(f'bin_hierarchy must be >= 0, got {bin_hierarchy}')
  if include_cls and bin_hierarchy:
    raise ValueError('include_cls: the CLS token has no log-binned descriptor '
                     '(bin_hierarchy > 0), as in dino-vit-features')
  if any(not 0 <= head < arch.num_heads for head in saliency_heads) or not saliency_heads:
    raise ValueError(f'saliency_heads must be in [0, {arch.num_heads - 1}], got {saliency_heads}')
  if query_chunk < 1:
    raise ValueError(f'query_chunk must be >= 1, got {query_chunk}')
  return grid_size(images.shape[1], images.shape[2], arch.patch_size, stride)


@functools.partial(jax.jit,
                   static_argnames=('arch', 'layer', 'facet', 'stride', 'include_cls',
                                    'bin_hierarchy', 'saliency', 'saliency_heads', 'query_chunk',
                                    'dtype'))
def extract(params: dict,
            images: jax.Array,
            arch: ViTArch,
            *,
            layer: int,
            facet: Facet = 'key',
            stride: int = 2,
            include_cls: bool = False,
            bin_hierarchy: int = 0,
            saliency: bool = False,
            saliency_heads: tuple[int, ...] = SALIENCY_HEADS,
            query_chunk: int = 1024,
            dtype=jnp.float32) -> DinoFeatures:
  """DINO descriptors (and saliency) of a batch of images, as dino-vit-features computes them.

  Blocks after `layer` are not computed, unless `saliency` asks for the last block.
  Descriptors are not L2-normalised (matching and segmentation normalise them).

  Args:
    params: the tree `load_vit` returns.
    images: `[B, H, W, 3]` in [-1, 1]; `H - p` and `W - p` multiples of `stride`.
    arch: the `ViTArch` `load_vit` returns.
    layer: the block (0-based) whose facet is returned; ASIC matches with 9, segments with 11.
    facet: 'key', 'query' or 'value' (that block's attention projections; channel
      `c = d * heads + head`, the order of dino-vit-features' `extract_descriptors`) or
      'token' (the block's output, before any final LayerNorm).
    stride: the patch conv's stride; must divide the patch size (8 -> 2 in ASIC).
    include_cls: also return the CLS token's facet.
    bin_hierarchy: 0 for plain descriptors, else log-binned ones with that many levels
      (dino-vit-features' `extract_descriptors(bin=True)` uses 2).
    saliency: also return `extract_saliency_maps`' saliency: the CLS token's attention to
      every patch in the last block, averaged over `saliency_heads`, min-max normalised per
      image.
    saliency_heads: the heads averaged (dino-vit-features' choice for ViT-S/8 by default).
    query_chunk: attention is computed this many queries at a time (memory, not numbers).
    dtype: the compute dtype (parameters are cast to it; LayerNorm statistics, softmax and
      the position-embedding resize stay float32).

  Returns:
    `DinoFeatures`: descriptors `[B, h, w, C]` in `dtype`, centers `[h, w, 2]`, and cls
    `[B, D]` and saliency `[B, h, w]` (float32) when asked for, else None.
  """
  _check(images,
         arch,
         layer=layer,
         facet=facet,
         stride=stride,
         include_cls=include_cls,
         bin_hierarchy=bin_hierarchy,
         saliency_heads=saliency_heads,
         query_chunk=query_chunk)
  facets, centers, saliency_map, cls = extract_layers(params,
                                                      images,
                                                      arch,
                                                      layers=(layer,),
                                                      facet=facet,
                                                      stride=stride,
                                                      saliency=saliency,
                                                      saliency_heads=saliency_heads,
                                                      query_chunk=query_chunk,
                                                      dtype=dtype)
  descriptors = facets[layer]
  if bin_hierarchy:
    descriptors = log_bin(descriptors, bin_hierarchy)
  return DinoFeatures(descriptors, centers, cls[layer] if include_cls else None, saliency_map)


@functools.partial(jax.jit,
                   static_argnames=('arch', 'layers', 'facet', 'stride', 'saliency',
                                    'saliency_heads', 'query_chunk', 'dtype'))
def extract_layers(
    params: dict,
    images: jax.Array,
    arch: ViTArch,
    *,
    layers: tuple[int, ...],
    facet: Facet = 'key',
    stride: int = 2,
    saliency: bool = False,
    saliency_heads: tuple[int, ...] = SALIENCY_HEADS,
    query_chunk: int = 1024,
    dtype=jnp.float32
) -> tuple[dict[int, jax.Array], jax.Array, jax.Array | None, dict[int, jax.Array]]:
  """The facet of several blocks (and the saliency) from ONE forward pass.

  ASIC matches with block 9 and segments with block 11 and the saliency of the last
  block: one pass serves all three. Arguments as `extract`.

  Returns:
    `({layer: [B, h, w, C]}, centers [h, w, 2], saliency [B, h, w] or None,
    {layer: [B, C]})`: the last holds each layer's CLS-token facet (a global descriptor).
  """
  for layer in layers:
    rows, cols = _check(images,
                        arch,
                        layer=layer,
                        facet=facet,
                        stride=stride,
                        include_cls=False,
                        bin_hierarchy=0,
                        saliency_heads=saliency_heads,
                        query_chunk=query_chunk)
  facets, saliency_map = _forward(params,
                                  images,
                                  arch,
                                  layers=tuple(layers),
                                  facet=facet,
                                  stride=stride,
                                  saliency=saliency,
                                  saliency_heads=saliency_heads,
                                  query_chunk=query_chunk,
                                  dtype=dtype)
  out = {layer: x[:, 1:].reshape(x.shape[0], rows, cols, -1) for layer, x in facets.items()}
  if saliency_map is not None:
    saliency_map = saliency_map.reshape(-1, rows, cols)
  cls = {layer: x[:, 0] for layer, x in facets.items()}
  return out, patch_centers(rows, cols, arch.patch_size, stride), saliency_map, cls


def _forward(params: dict, images: jax.Array, arch: ViTArch, *, layers: tuple[int, ...], facet: str,
             stride: int, saliency: bool, saliency_heads: tuple[int, ...], query_chunk: int,
             dtype) -> tuple[dict[int, jax.Array], jax.Array | None]:
  """Runs the blocks up to the deepest one needed: `{layer: [B, T, C]}` and the CLS saliency."""
  blocks = jax.tree.map(lambda a: a.astype(dtype), params['encoder']['layer'])
  x = _embed(params, images, arch, stride, dtype)
  last = arch.num_layers - 1 if saliency else max(layers)
  facets, saliency_map = {}, None
  for index in range(last + 1):
    p = blocks[str(index)]
    qkv = _qkv(_layer_norm(x, p['layernorm_before'], arch.layer_norm_eps), p, arch.num_heads)
    if index in layers and facet != 'token':
      # [B, T, heads, d] -> [B, T, d, heads]: dino-vit-features' channel order.
      facets[index] = qkv[facet].swapaxes(-1, -2).reshape(x.shape)
    if saliency and index == arch.num_layers - 1:
      saliency_map = _cls_attention(qkv, saliency_heads)
    # The last block computed needs only its projections, unless its output is a facet.
    if index < last or (index in layers and facet == 'token'):
      x = _block_rest(x, qkv, p, arch, query_chunk)
    if index in layers and facet == 'token':
      facets[index] = x
  return facets, saliency_map
