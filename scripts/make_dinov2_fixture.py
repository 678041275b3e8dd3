"""Writes tests/fixtures/dinov2_reference.npz: transformers' PyTorch DINOv2 on tiny random models.

The reference for `asic_jax/models/dinov2.py` (which runs `asic_jax/models/dino.py`'s forward
on DINOv2 weights). Two tiny random `transformers.Dinov2Model`s, patch 14 as on the hub, a
16 x 16 stored position grid (the hub's is 37 x 37), 24 wide with 6 heads, LayerScale values
away from 1 (the checkpoints' are learned): `mlp`, the ViT MLP of dinov2-small/base/large, and
`swiglu`, the SwiGLU MLP of dinov2-giant. Each is saved with PyTorch's `save_pretrained` (safetensors, as on
the hub) and run in float64:

* at the native stride (14), by the model's own forward: transformers' position-embedding
  interpolation (`F.interpolate(size=(H // 14, W // 14), mode='bicubic')`) included, at a
  non-square size;
* at lower strides (7 and 2), as dino-vit-features runs DINO: the patch conv at that stride,
  the position grid resized to the patch grid by the same `F.interpolate(size=...)` call
  (transformers sizes it from `height // patch_size`, which is no patch grid below the patch
  size), then the model's own encoder.

Facets are captured by forward hooks and laid out as dino-vit-features lays them out
(channel = d * heads + head).

torch is not a dependency of asic_jax; re-run in a throwaway environment:

  python3 -m venv /tmp/torchenv && . /tmp/torchenv/bin/activate
  pip install torch==2.13.0 transformers==4.57.6 numpy==2.4.6 safetensors
  python scripts/make_dinov2_fixture.py   # from the repository root

Layout of the npz (no pickles; strings are 0-d unicode arrays; token axes have CLS first):
  config_json_<model>, safetensors_<model>   the saved folders (`mlp`, `swiglu`)
  facet_layer                                the block whose key / query / value are stored
  images_<case>                              [B, H, W, 3] float32 in [-1, 1]
  stride_<case>, model_<case>                the case's stride and model
  tokens_<case>                              [L, B, 1 + h w, D] every block's output
  key_<case>, query_<case>, value_<case>     [B, 1 + h w, D] block facet_layer's projections
  cls_attention_<case>                       [B, heads, h w] the last block's CLS attention
  pos_<case>                                 [h w, D] the resized patch position embeddings
  last_hidden_state_native                   [B, 1 + h w, D] the model's output (final norm)
Cases: 'native' (mlp, 2 images 42 x 56, stride 14, grid 3 x 4), 's7' (mlp, 49 x 63, stride 7,
grid 6 x 8), 's2' (mlp, 24 x 30, stride 2, grid 6 x 9), 'swiglu' (swiglu, 28 x 42, stride 14,
grid 2 x 3).
"""

import pathlib
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import transformers

import make_dino_fixture  # its weights and images; scripts/ is on the path when run as a script

OUT = pathlib.Path(__file__).resolve().parents[1] / 'tests' / 'fixtures' / 'dinov2_reference.npz'
FACET_LAYER = 1
MEAN, STD = make_dino_fixture.MEAN, make_dino_fixture.STD
CASES = {  # model, stride, (batch, height, width)
    'native': ('mlp', 14, (2, 42, 56)),
    's7': ('mlp', 7, (1, 49, 63)),
    's2': ('mlp', 2, (1, 24, 30)),
    'swiglu': ('swiglu', 14, (1, 28, 42)),
}


def make_model(swiglu: bool, seed: int) -> transformers.Dinov2Model:
  """A tiny DINOv2 whose weights are large enough for peaked attention (HF's init is 0.02)."""
  config = transformers.Dinov2Config(hidden_size=24,
                                     num_hidden_layers=2 if swiglu else 3,
                                     num_attention_heads=6,
                                     mlp_ratio=2,
                                     image_size=224,
                                     patch_size=14,
                                     use_swiglu_ffn=swiglu,
                                     attn_implementation='eager')
  torch.manual_seed(seed)
  return make_dino_fixture.randomize(transformers.Dinov2Model(config).eval())


def resized_positions(model: transformers.Dinov2Model, rows: int, cols: int) -> torch.Tensor:
  """Patch position embeddings `[rows * cols, D]`, resized as transformers resizes them."""
  pos = model.embeddings.position_embeddings[0, 1:]
  side = int(round(pos.shape[0]**0.5))
  grid = pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
  grid = F.interpolate(grid, size=(rows, cols), mode='bicubic', align_corners=False)
  return grid[0].permute(1, 2, 0).reshape(rows * cols, -1)


def run(model: transformers.Dinov2Model, images: np.ndarray, stride: int) -> dict:
  """Every block's output, block FACET_LAYER's projections and the last block's attention."""
  pixels = (torch.from_numpy(images).double().permute(0, 3, 1, 2) + 1) / 2
  mean, std = (torch.tensor(v, dtype=torch.float64)[:, None, None] for v in (MEAN, STD))
  pixels = (pixels - mean) / std
  captured = {'tokens': []}
  heads = model.config.num_attention_heads
  layers = model.encoder.layer

  def projections(module, inputs, outputs):
    x = inputs[0]
    for name in ('query', 'key', 'value'):
      proj = getattr(module, name)(x).reshape(x.shape[0], x.shape[1], heads, -1)
      captured[name] = proj.permute(0, 1, 3, 2).flatten(-2)  # channel = d * heads + head

  def attention(module, inputs, outputs):
    captured['cls_attention'] = outputs[1][:, :, 0, 1:]  # B x heads x (T - 1)

  def block(module, inputs, outputs):
    captured['tokens'].append(outputs)

  handles = [
      layers[FACET_LAYER].attention.attention.register_forward_hook(projections),
      layers[-1].attention.attention.register_forward_hook(attention)
  ] + [layer.register_forward_hook(block) for layer in layers]
  patch = model.config.patch_size
  with torch.no_grad():
    if stride == patch:
      captured['last_hidden_state'] = model(pixels).last_hidden_state
      rows, cols = images.shape[1] // patch, images.shape[2] // patch
    else:
      proj = model.embeddings.patch_embeddings.projection
      patches = F.conv2d(pixels, proj.weight, proj.bias, stride=stride)
      rows, cols = patches.shape[-2:]
      patches = patches.flatten(2).transpose(1, 2) + resized_positions(model, rows, cols)
      cls = model.embeddings.cls_token + model.embeddings.position_embeddings[:, :1]
      model.encoder(torch.cat([cls.expand(len(images), -1, -1), patches], dim=1))
    captured['pos'] = resized_positions(model, rows, cols)
  for handle in handles:
    handle.remove()
  captured['tokens'] = torch.stack(captured['tokens'])
  return captured


def main() -> None:
  arrays = {'facet_layer': np.array(FACET_LAYER)}
  models = {}
  for seed, kind in enumerate(('mlp', 'swiglu')):
    model = make_model(kind == 'swiglu', seed)
    with tempfile.TemporaryDirectory() as folder:
      model.save_pretrained(folder, safe_serialization=True)
      arrays[f'config_json_{kind}'] = np.array((pathlib.Path(folder) / 'config.json').read_text())
      weights = (pathlib.Path(folder) / 'model.safetensors').read_bytes()
      arrays[f'safetensors_{kind}'] = np.frombuffer(weights, dtype=np.uint8)
    models[kind] = model.double()  # the saved float32 weights, computed in float64
  for seed, (case, (kind, stride, shape)) in enumerate(CASES.items()):
    images = make_dino_fixture.make_images(*shape, seed)
    out = run(models[kind], images, stride)
    arrays.update({
        f'images_{case}': images,
        f'stride_{case}': np.array(stride),
        f'model_{case}': np.array(kind),
        f'tokens_{case}': out['tokens'].float().numpy(),
        f'pos_{case}': out['pos'].float().numpy(),
    })
    if case != 'swiglu':
      for name in ('key', 'query', 'value', 'cls_attention'):
        arrays[f'{name}_{case}'] = out[name].float().numpy()
    if case == 'native':
      arrays['last_hidden_state_native'] = out['last_hidden_state'].float().numpy()
  make_dino_fixture.write(OUT, arrays)


if __name__ == '__main__':
  main()
