"""Your own folder of images: DINO pseudo-matches, masks and parts, then training.

  python -m asic_jax.main --config=configs/folder.py --config.data.path=DIR --workdir=runs/mine
  python -m asic_jax.main --config=configs/folder.py --config.data.path=DIR \\
      --config.mode=extract --workdir=runs/mine          # the extraction alone

Optional: --config.data.mask_dir=MASKS (masks with the images' file stems; otherwise DINO
co-segmentation finds the foreground), --config.features.model=facebook/dino-vitb8 or a
local folder of a Hugging Face ViT checkpoint (offline: HF_HUB_OFFLINE=1).
"""

from asic_jax import config_lib


def get_config(arg: str = ''):
  config_lib.no_words(arg, 'configs/folder.py')
  c = config_lib.base_config(arg)
  c.data.name = 'folder'
  return c
