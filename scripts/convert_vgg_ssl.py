"""Converts GANgealing's SimCLR VGG-16 (`simclr_vgg_phase150.pt`) for `loss.perceptual='vgg_ssl'`.

The released ASIC code loads that file into `torchvision.models.vgg16().features`
(a plain state dict: `0.weight`, `0.bias`, `2.weight`, ..., `28.bias`). This
writes it as `FOLDER/vgg16_weights.h5` in lpips-j's layout (groups `conv1_1`
... `conv5_3`, `weight` `[3, 3, C_in, C_out]`, `bias` `[C_out]`), which
`asic_jax.models.perceptual.load_perceptual('vgg_ssl', FOLDER)` reads.

Needs PyTorch (not a dependency of asic_jax), once:

  pip install torch
  python scripts/convert_vgg_ssl.py pretrained/simclr_vgg_phase150.pt weights/vgg_ssl

The file is read with `torch.load(weights_only=True)`: tensors only, no code.
"""

import argparse
import pathlib
from typing import Mapping

import h5py
import numpy as np

# Indices of the 13 convolutions in `torchvision.models.vgg16().features`.
_TORCH_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_NAMES = ('conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2', 'conv3_3', 'conv4_1',
          'conv4_2', 'conv4_3', 'conv5_1', 'conv5_2', 'conv5_3')


def convert(state_dict: Mapping[str, np.ndarray], folder: pathlib.Path) -> pathlib.Path:
  """Writes `folder/vgg16_weights.h5` from a `vgg16().features` state dict.

  Args:
    state_dict: `{index}.weight` `[C_out, C_in, 3, 3]` (PyTorch's OIHW) and
      `{index}.bias` `[C_out]` for the 13 convolution indices, nothing else.
    folder: the output folder, created if needed.

  Returns:
    The written file.
  """
  expected = {f'{i}.{kind}' for i in _TORCH_INDICES for kind in ('weight', 'bias')}
  if set(state_dict) != expected:
    raise ValueError('state_dict must be the state dict of torchvision vgg16().features; '
                     f'missing {sorted(expected - set(state_dict))}, '
                     f'unexpected {sorted(set(state_dict) - expected)[:5]}')
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / 'vgg16_weights.h5'
  with h5py.File(path, 'w') as f:
    for index, name in zip(_TORCH_INDICES, _NAMES):
      weight = np.asarray(state_dict[f'{index}.weight'], np.float32)
      if weight.ndim != 4 or weight.shape[2:] != (3, 3):
        raise ValueError(f'{index}.weight must be [C_out, C_in, 3, 3], got {weight.shape}')
      group = f.create_group(name)
      group['weight'] = weight.transpose(2, 3, 1, 0)  # OIHW -> HWIO, flax's kernel layout.
      group['bias'] = np.asarray(state_dict[f'{index}.bias'], np.float32)
  return path


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('checkpoint', type=pathlib.Path, help='simclr_vgg_phase150.pt')
  parser.add_argument('folder', type=pathlib.Path, help='output folder')
  args = parser.parse_args()
  import torch  # pylint: disable=import-outside-toplevel  (only this script needs it)
  state_dict = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
  path = convert({key: value.numpy() for key, value in state_dict.items()}, args.folder)
  print(f'wrote {path}; use --config.loss.perceptual_weights={args.folder}')


if __name__ == '__main__':
  main()
