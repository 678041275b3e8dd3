"""A SAMURAI-style object folder (paper defaults; `released` for the released code's).

  python -m asic_jax.main --config=configs/samurai.py:duck --workdir=runs/samurai_duck

The arg (required) is the object: the folder `<data.root>/SAMURAI/<object>/`
holding `images/` and optionally `masks/` of the same stems
(https://markboss.me/publication/2022-samurai/). No keypoints: evaluation is the
cycle self-consistency score, threshold S (img).
"""

from asic_jax import config_lib
from asic_jax.errors import UserError


def get_config(arg: str = ''):
  c = config_lib.base_config(arg)
  words, _ = config_lib.parse_arg(arg)
  if len(words) != 1:
    raise UserError('configs/samurai.py needs one object name, '
                    f'--config=configs/samurai.py:<object>, got {words}')
  c.data.name = 'samurai'
  c.data.category = words[0]
  # eval.threshold '' keeps the protocol (img); bbox and kp_bbox need annotations.
  return c
