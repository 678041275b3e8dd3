"""The config checked before a job runs: values whose mistakes would otherwise surface deep
inside a compiled step, or after an hour of training, are one line naming the field.

Each list of valid choices comes from the module that owns it, which is why this check sits
above them all, where the jobs run (`asic_jax.main.run`), and not in `config_lib`.
"""

import math

import ml_collections

from asic_jax import config_lib, losses, objective, optim, parallel
from asic_jax.correspondences import extract, kmeans
from asic_jax.data import thresholds
from asic_jax.errors import UserError
from asic_jax.evaluation import baselines, transfer
from asic_jax.models import asic, perceptual, vgg


def check(c: ml_collections.ConfigDict) -> None:
  """Checks the config's values against their owners' choices and ranges.

  Raises:
    UserError: naming the first bad field.
  """

  def need(ok: bool, field: str, what: str) -> None:
    if not ok:
      raise UserError(f'config.{field} must be {what}, got {config_lib.get(c, field)!r}')

  def choice(field: str, valid) -> None:
    need(config_lib.get(c, field) in valid, field, f'one of {tuple(valid)}')

  choice('parallel', parallel.MODES)
  choice('dtype', asic.DTYPES)
  need(c.train.num_steps >= 0, 'train.num_steps', '>= 0')
  need(c.train.batch_size >= 2 and c.train.batch_size % 2 == 0, 'train.batch_size',
       'an even number >= 2 (images; pairs = half)')
  need(c.train.log_every >= 1, 'train.log_every', '>= 1')
  need(c.checkpoint.every >= 1, 'checkpoint.every', '>= 1')
  need(c.checkpoint.keep >= 1, 'checkpoint.keep', '>= 1')
  choice('optim.schedule', optim.SCHEDULES)
  need(math.isfinite(c.optim.lr) and c.optim.lr > 0, 'optim.lr', 'a finite number > 0')
  for name in ('b1', 'b2'):
    need(0 <= c.optim[name] < 1, f'optim.{name}', 'in [0, 1)')
  need(c.optim.eps > 0, 'optim.eps', '> 0')
  need(c.optim.period > 0, 'optim.period', '> 0')
  need(c.optim.period_mult >= 1, 'optim.period_mult', '>= 1')
  choice('loss.form', losses.FORMS)
  choice('preset', config_lib.PRESETS)
  need(
      c.preset != 'released' or c.loss.form == 'released', 'preset',
      "set through the config arg (--config=configs/<name>.py:released): "
      "--config.preset alone would only relabel a run of the paper's settings")
  choice('loss.perceptual', perceptual.KINDS)
  for term in objective.TERMS:
    need(c.loss[term] >= 0, f'loss.{term}', '>= 0')
  need(c.loss.kp_temperature > 0, 'loss.kp_temperature', '> 0')
  need(c.data.img_size >= 16 and c.data.img_size % 16 == 0, 'data.img_size',
       'a multiple of 16 (the U-Net pools 4 times)')
  need(c.loss.recon_size >= 1 and c.data.img_size % c.loss.recon_size == 0, 'loss.recon_size',
       'a divisor of data.img_size')
  need(0.0 <= c.augment.tps_scale < 0.5, 'augment.tps_scale', 'in [0, 0.5)')
  for name in ('jitter_prob', 'gray_prob', 'blur_prob', 'solarize_prob'):
    need(0.0 <= c.augment[name] <= 1.0, f'augment.{name}', 'a probability in [0, 1]')
  need(c.augment.hue <= 0.5, 'augment.hue', '<= 0.5')
  need(c.model.channel_multiplier > 0, 'model.channel_multiplier', '> 0')
  need(c.model.grid_size >= 2, 'model.grid_size', '>= 2')
  need(c.parts.num_parts >= 1, 'parts.num_parts', '>= 1')
  need(c.pairs.max_per_image >= 0, 'pairs.max_per_image', '>= 0')
  choice('features.backbone', extract.BACKBONES)
  choice('features.masks', extract.MASKS)
  need(c.features.stride >= 1, 'features.stride', '>= 1')
  for name in ('match_layer', 'seg_layer'):
    choice(f'features.vgg.{name}', vgg.LAYERS)
  need(c.features.vgg.stride in vgg.STRIDES and c.data.img_size % c.features.vgg.stride == 0,
       'features.vgg.stride', f'one of {vgg.STRIDES} dividing data.img_size')
  choice('features.elbow_keep', kmeans.ELBOW_KEEPS)
  choice('eval.threshold', ('',) + thresholds.THRESHOLD_KINDS)
  choice('eval.transfer', transfer.TRANSFERS)
  need(c.eval.soft_window >= 0, 'eval.soft_window', '>= 0')
  need(c.eval.soft_temperature > 0, 'eval.soft_temperature', '> 0')
  need(c.eval.refine_sigma > 0, 'eval.refine_sigma', '> 0 (a fraction of the image side)')
  need(c.eval.refine_temperature >= 0, 'eval.refine_temperature', '>= 0 (0: argmax)')
  need(c.eval.congeal_steps >= 0, 'eval.congeal_steps', '>= 0 (0: off)')
  need(c.eval.congeal_sigma > 0, 'eval.congeal_sigma', '> 0 (a fraction of the canonical side)')
  need(c.eval.congeal_temperature > 0, 'eval.congeal_temperature', '> 0')
  need(c.eval.congeal_grid >= 2, 'eval.congeal_grid', '>= 2')
  need(c.eval.step >= 0, 'eval.step', '>= 0 (0: the latest)')
  need(c.eval.bn_chunk >= 1, 'eval.bn_chunk', '>= 1')
  choice('baseline.method', baselines.METHODS)
  choice('baseline.preset', baselines.PRESETS)
  need(c.vis.every >= 0, 'vis.every', '>= 0')
  if c.data.name == 'synthetic':
    need(c.data.synthetic.num_images >= 2, 'data.synthetic.num_images', '>= 2')
