"""DINOv2 descriptors: Hugging Face's Flax DINOv2 weights, `dino.py`'s forward.

`facebook/dinov2-small` (the default), `-base`, `-large` and `-giant` load through
`transformers.FlaxDinov2Model` (safetensors convert without torch) and run through the same
forward as DINO (`asic_jax.models.dino`): the patch conv at a stride below the patch size (14
-> 2 by default: a patch grid of `1 + (S - 14) / stride` per side), any block's key / query /
value / token facet in dino-vit-features' channel order, and the CLS-attention saliency. What
DINOv2 adds is carried by its parameters: LayerScale after attention and after the MLP (as
PyTorch applies it, `x * lambda1`), and SwiGLU MLPs (giant).

Position embeddings are resized as transformers' *PyTorch* DINOv2 resizes them:
`F.interpolate(size=(rows, cols), mode='bicubic', align_corners=False)` (Keys a = -0.75),
`rows x cols` the patch grid (transformers sizes it `height // 14`, the same grid at the native
stride). `FlaxDinov2Model`'s own `interpolate_pos_encoding` is not that: it calls
`jax.image.scale_and_translate` (Keys a = -0.5, taps outside the grid dropped rather than
clamped) at scale `(h + 0.1) / n`, so its features differ from PyTorch's wherever the grid is
resized; the weights were trained and are published with the PyTorch model, so we follow it
(parity to 1e-5: `tests/dinov2_test.py`). Flax's LayerScale also multiplies by
`config.layerscale_value` twice (harmless at the checkpoints' 1.0); we use `lambda1` alone.

Registers: transformers 4.57.6 has no Flax DINOv2 with registers (only PyTorch's
`Dinov2WithRegistersModel`), so `facebook/dinov2-with-registers-*` is refused with that reason.

Saliency (co-segmentation's vote): the last block's CLS attention averaged over *all* heads,
min-max normalised per image. dino-vit-features' heads (0, 2, 4, 5) were picked by eye for DINO
ViT-S/8; nothing comparable is published for DINOv2, whose CLS attention without registers
also lights a few high-norm background tokens (Darcet et al., *Vision Transformers Need
Registers*, 2024).

Usage:
  arch, params = load_dinov2('facebook/dinov2-small')
  features = dino.extract(params, images, arch, layer=9, stride=2,
                          saliency_heads=saliency_heads(arch))
"""

import dataclasses

import transformers

from asic_jax.models import dino

DEFAULT_MODEL = 'facebook/dinov2-small'
MODELS = ('facebook/dinov2-small', 'facebook/dinov2-base', 'facebook/dinov2-large',
          'facebook/dinov2-giant')


def _vit_block(block: dict) -> dict:
  """One DINOv2 block's parameters in the ViT layout `dino.py` runs: `norm1`, `norm2` ->
  `layernorm_before`, `layernorm_after`; `mlp.fc1`, `fc2` -> `intermediate.dense`,
  `output.dense` (a SwiGLU `mlp` -> `swiglu`); `layer_scale1`, `layer_scale2` kept."""
  out = dict(layernorm_before=block['norm1'],
             layernorm_after=block['norm2'],
             attention=block['attention'],
             layer_scale1=block['layer_scale1'],
             layer_scale2=block['layer_scale2'])
  mlp = block['mlp']
  if 'weights_in' in mlp:
    out['swiglu'] = mlp
  else:
    out.update(intermediate=dict(dense=mlp['fc1']), output=dict(dense=mlp['fc2']))
  return out


def load_dinov2(name_or_path: str = DEFAULT_MODEL) -> tuple[dino.ViTArch, dict]:
  """Loads a Hugging Face DINOv2 checkpoint: its architecture and its parameters.

  As `dino.load_vit`: safetensors load without torch, offline with `HF_HUB_OFFLINE=1` and a
  cached hub id or a folder written by `save_pretrained`.

  Args:
    name_or_path: a hub id (`MODELS`) or a folder.

  Returns:
    `(arch, params)`: the static `dino.ViTArch` (positions resized as PyTorch's DINOv2 does)
    and the parameter tree in `dino.py`'s layout (`embeddings`, `encoder.layer.<i>`,
    `layernorm`), arrays on the default device.

  Raises:
    ValueError: the checkpoint is not a DINOv2 (with registers, say).
  """
  config = transformers.AutoConfig.from_pretrained(name_or_path)
  if config.model_type != 'dinov2':
    registers = ' (transformers 4.57.6 has no Flax DINOv2 with registers)' if (
        config.model_type == 'dinov2_with_registers') else ''
    raise ValueError(f'{name_or_path!r} is a {config.model_type!r} model, not a DINOv2 one'
                     f'{registers}; use one of {", ".join(MODELS)}')
  model, params = dino.from_pretrained(transformers.FlaxDinov2Model, name_or_path)
  layers = params['encoder']['layer']
  params['encoder']['layer'] = {index: _vit_block(block) for index, block in layers.items()}
  arch = dataclasses.replace(dino.ViTArch.from_config(model.config), position_offset=0.0)
  return arch, params


def saliency_heads(arch: dino.ViTArch) -> tuple[int, ...]:
  """The heads whose CLS attention the saliency averages: all of them (module docstring)."""
  return tuple(range(arch.num_heads))
