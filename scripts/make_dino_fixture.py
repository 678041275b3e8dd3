"""Writes tests/fixtures/dino_reference.npz: dino-vit-features' recipe, run in PyTorch.

The reference for `asic_jax/models/dino.py`. A tiny random Hugging Face `ViTModel` (patch 8,
a 28 x 28 stored position grid like DINO's, 6 heads so that the saliency heads 0, 2, 4, 5
exist) is saved with `save_pretrained` (safetensors, as the hub's DINO checkpoints are), then
run as dino-vit-features' `ViTExtractor` runs DINO: the patch conv at stride 4, the position
embeddings resized by `F.interpolate(bicubic, scale_factor=(h + 0.1) / n, ...,
recompute_scale_factor=False)`, facets captured by forward hooks and laid out as
`extract_descriptors` lays them out (channel = d * heads + head), the saliency of
`extract_saliency_maps` (its block 11 is DINO's last block; here the last block too) and the
log-binned descriptor of `_log_bin` (hierarchy 2, the default `extract_descriptors` uses).

torch is not a dependency of asic_jax; re-run in a throwaway environment:

  python3 -m venv /tmp/torchenv && . /tmp/torchenv/bin/activate
  pip install torch==2.13.0 transformers==4.57.6 numpy==2.4.6 safetensors
  python scripts/make_dino_fixture.py   # from the repository root

Layout of the npz (no pickles; strings are 0-d unicode arrays; token axes include CLS first):
  config_json, safetensors      the saved folder: config.json text, model.safetensors bytes
  stride, key_layer, token_layer, query_layer, saliency_layer, saliency_heads
  images_<case>                 [B, H, W, 3] float32 in [-1, 1] (asic_jax's image range)
  key_<case>                    [B, 1 + h w, D] key facet of block key_layer, CLS first
  saliency_<case>               [B, h w] min-max normalised CLS attention
  pos_<case>                    [h w, D] the resized patch position embeddings
  query_rect, token_rect        [B, 1 + h w, D] query facet of block query_layer, block
                                token_layer's output
  binned_bin                    [B, h w, 17 D] log-binned key facet (hierarchy 2)
Cases: 'sq' (2 images, 48 x 48, grid 11 x 11), 'rect' (1 image, 40 x 56, grid 9 x 13),
'bin' (1 image, 24 x 40, grid 5 x 9).
"""

import io
import json
import pathlib
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import transformers

OUT = pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'fixtures' / 'dino_reference.npz'
STRIDE = 4
KEY_LAYER = 1
QUERY_LAYER = 0
TOKEN_LAYER = 1
SALIENCY_HEADS = (0, 2, 4, 5)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CASES = {'sq': (2, 48, 48), 'rect': (1, 40, 56), 'bin': (1, 24, 40)}


def make_model() -> transformers.ViTModel:
  """A tiny ViT whose weights are large enough for peaked attention (HF's init is 0.02)."""
  config = transformers.ViTConfig(hidden_size=36,
                                  num_hidden_layers=3,
                                  num_attention_heads=6,
                                  intermediate_size=72,
                                  image_size=224,
                                  patch_size=8,
                                  layer_norm_eps=1e-6,
                                  attn_implementation='eager')
  torch.manual_seed(0)
  return randomize(transformers.ViTModel(config, add_pooling_layer=False).eval())


def randomize(model: torch.nn.Module) -> torch.nn.Module:
  """Redraws a Hugging Face ViT's (or DINOv2's) weights from torch's generator, in parameter
  order, at scales that give peaked attention (HF's init, 0.02, gives nearly uniform one)."""
  with torch.no_grad():
    for name, param in model.named_parameters():
      if name.endswith('lambda1'):  # DINOv2's LayerScale (the checkpoints' are small too)
        param.copy_(0.1 + 0.4 * torch.rand_like(param))
      elif 'norm' in name and name.endswith('weight'):
        param.copy_(1.0 + 0.2 * torch.randn_like(param))
      elif name.endswith('bias'):
        param.copy_(0.2 * torch.randn_like(param))
      elif name.endswith('weight'):  # linear [out, in] and conv [out, in, kh, kw]
        param.copy_(torch.randn_like(param) * 1.5 / param[0].numel()**0.5)
      else:  # the CLS (and mask) tokens and the position embeddings
        param.copy_(0.5 * torch.randn_like(param))
  return model


def make_images(batch: int, height: int, width: int, seed: int) -> np.ndarray:
  """Smooth colour patterns plus noise, `[B, H, W, 3]` in [-1, 1]."""
  rng = np.random.default_rng(seed)
  ys, xs = np.mgrid[0:height, 0:width] / 16.0
  freq = rng.uniform(0.5, 2.0, size=(batch, 3, 2))
  phase = rng.uniform(0, 2 * np.pi, size=(batch, 3))
  waves = np.sin(freq[..., 0, None, None] * xs + freq[..., 1, None, None] * ys +
                 phase[..., None, None])
  images = 0.7 * waves + 0.3 * rng.uniform(-1, 1, size=waves.shape)
  return np.clip(images, -1, 1).transpose(0, 2, 3, 1).astype(np.float32)


def resized_positions(model: transformers.ViTModel, rows: int, cols: int) -> torch.Tensor:
  """Patch position embeddings `[rows * cols, D]` as dino-vit-features' `_fix_pos_enc`."""
  pos = model.embeddings.position_embeddings[0, 1:]
  side = int(round(pos.shape[0]**0.5))
  grid = pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
  grid = F.interpolate(grid,
                       scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
                       mode='bicubic',
                       align_corners=False,
                       recompute_scale_factor=False)
  assert grid.shape[-2:] == (rows, cols), grid.shape
  return grid[0].permute(1, 2, 0).reshape(rows * cols, -1)


def run(model: transformers.ViTModel, images: np.ndarray) -> dict[str, torch.Tensor]:
  """The extractor's forward at `STRIDE`, with every facet the fixture stores captured."""
  pixels = (torch.from_numpy(images).permute(0, 3, 1, 2) + 1) / 2
  pixels = (pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
  proj = model.embeddings.patch_embeddings.projection
  patches = F.conv2d(pixels, proj.weight, proj.bias, stride=STRIDE)
  rows, cols = patches.shape[-2:]
  patches = patches.flatten(2).transpose(1, 2)
  cls = model.embeddings.cls_token.expand(len(images), -1, -1)
  pos = model.embeddings.position_embeddings
  tokens = torch.cat([cls + pos[:, :1], patches + resized_positions(model, rows, cols)], dim=1)

  captured = {}
  layers = model.encoder.layer
  heads = model.config.num_attention_heads

  def projection_hook(name, which):

    def hook(module, inputs, outputs):
      # As the extractor's qkv hook: recompute the projection from the attention's input.
      x = inputs[0]
      proj = getattr(module, which)(x).reshape(x.shape[0], x.shape[1], heads, -1)
      captured[name] = proj.permute(0, 2, 1, 3)  # B x heads x t x d

    return hook

  def attention_hook(module, inputs, outputs):
    captured['attn'] = outputs[1]  # B x heads x t x t, the softmax probabilities

  def token_hook(module, inputs, outputs):
    captured['token'] = outputs[:, None]  # B x 1 x t x D

  handles = [
      layers[KEY_LAYER].attention.attention.register_forward_hook(projection_hook('key', 'key')),
      layers[QUERY_LAYER].attention.attention.register_forward_hook(
          projection_hook('query', 'query')),
      layers[-1].attention.attention.register_forward_hook(attention_hook),
      layers[TOKEN_LAYER].register_forward_hook(token_hook),
  ]
  with torch.no_grad():
    model.encoder(tokens)
  for handle in handles:
    handle.remove()
  captured['grid'] = (rows, cols)
  captured['pos'] = resized_positions(model, rows, cols).detach()
  return captured


def descriptors(facet: torch.Tensor) -> torch.Tensor:
  """`extract_descriptors`' layout, CLS kept: B x heads x t x d -> B x t x (d * heads)."""
  return facet.permute(0, 2, 3, 1).flatten(start_dim=-2)


def saliency(attn: torch.Tensor) -> torch.Tensor:
  """`extract_saliency_maps`: CLS-to-patch attention, mean of 4 heads, min-max per image."""
  cls_attn = attn[:, list(SALIENCY_HEADS), 0, 1:].mean(dim=1)
  low = cls_attn.min(dim=1, keepdim=True).values
  high = cls_attn.max(dim=1, keepdim=True).values
  return (cls_attn - low) / (high - low)


def log_bin(facet: torch.Tensor, rows: int, cols: int, hierarchy: int = 2) -> torch.Tensor:
  """`_log_bin`: B x heads x t x d (no CLS) -> B x t x ((1 + 8 hierarchy) d heads)."""
  x = descriptors(facet).transpose(1, 2).reshape(facet.shape[0], -1, rows, cols)
  pools = [
      F.avg_pool2d(x, 3**k, stride=1, padding=3**k // 2, count_include_pad=False)
      for k in range(hierarchy)
  ]
  out = []
  for y in range(rows):
    for x_ in range(cols):
      bins = []
      for k in range(hierarchy):
        size = 3**k
        for i in (y - size, y, y + size):
          for j in (x_ - size, x_, x_ + size):
            if k and i == y and j == x_:
              continue
            # Outside the grid the extractor reads the nearest bin inside it.
            bins.append(pools[k][:, :, min(max(i, 0), rows - 1), min(max(j, 0), cols - 1)])
      out.append(torch.cat(bins, dim=1))
  return torch.stack(out, dim=1)


def main() -> None:
  model = make_model()
  with tempfile.TemporaryDirectory() as folder:
    model.save_pretrained(folder, safe_serialization=True)
    config_json = (pathlib.Path(folder) / 'config.json').read_text()
    weights = (pathlib.Path(folder) / 'model.safetensors').read_bytes()
  arrays = {
      'config_json': np.array(config_json),
      'safetensors': np.frombuffer(weights, dtype=np.uint8),
      'stride': np.array(STRIDE),
      'key_layer': np.array(KEY_LAYER),
      'query_layer': np.array(QUERY_LAYER),
      'token_layer': np.array(TOKEN_LAYER),
      'saliency_layer': np.array(model.config.num_hidden_layers - 1),
      'saliency_heads': np.array(SALIENCY_HEADS),
  }
  for seed, (case, (batch, height, width)) in enumerate(CASES.items()):
    images = make_images(batch, height, width, seed)
    out = run(model, images)
    arrays[f'images_{case}'] = images
    if case == 'bin':
      arrays['binned_bin'] = log_bin(out['key'][:, :, 1:], *out['grid']).numpy()
      continue
    arrays[f'key_{case}'] = descriptors(out['key']).numpy()
    arrays[f'saliency_{case}'] = saliency(out['attn']).numpy()
    arrays[f'pos_{case}'] = out['pos'].numpy()
    if case == 'rect':
      arrays['query_rect'] = descriptors(out['query']).numpy()
      arrays['token_rect'] = descriptors(out['token']).numpy()
  write(OUT, arrays)
  print('config:', json.loads(config_json)['hidden_size'], 'hidden')


def write(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
  """`arrays` as a compressed npz at `path`, and what it holds on stdout."""
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  path.write_bytes(buffer.getvalue())
  print(f'wrote {path} ({len(buffer.getvalue()) / 1024:.0f} KiB):')
  for key, value in arrays.items():
    print(f'  {key}: {value.shape} {value.dtype}')


if __name__ == '__main__':
  main()
