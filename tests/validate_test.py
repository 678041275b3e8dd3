"""Tests of asic_jax.validate: every config the repository ships passes, and a bad value is one
error naming its field, its valid values (from the module that owns them) and what it got."""

import pytest

from asic_jax import config_lib, validate
from asic_jax.errors import UserError
from conftest import load_config


@pytest.mark.parametrize('name, arg', [('tiny', ''), ('tiny', 'released,recommended'),
                                       ('base', 'cpu,dinov2'), ('spair', 'cat'),
                                       ('cub', '1,released'), ('pfwillow', 'duck,cpu,recommended'),
                                       ('samurai', 'duck'), ('folder', 'cpu')])
def test_every_shipped_config_passes(name, arg):
  validate.check(load_config(name, arg))


@pytest.mark.parametrize('field,value,message', [
    ('preset', 'released', 'config.preset must be set through the config arg'),
    ('preset', 'fancy', r"config.preset must be one of \('paper', 'released'\)"),
    ('optim.lr', float('nan'), 'config.optim.lr must be a finite number > 0, got nan'),
    ('optim.b2', 1.0, r'config.optim.b2 must be in \[0, 1\)'),
    ('optim.schedule', 'step', r"config.optim.schedule must be one of \('constant', "),
    ('features.elbow_keep', 'first',
     r"config.features.elbow_keep must be one of \('last', 'previous'\)"),
    ('parallel', 'vmap', r"config.parallel must be one of \('shard_map', 'pmap'\)"),
    ('features.masks', 'grabcut', r"config.features.masks must be one of \('coseg', 'none'\)"),
    ('features.backbone', 'dinov3',
     r"config.features.backbone must be one of \('dino', 'dinov2', 'vgg16'\)"),
    ('features.vgg.stride', 3, r'config.features.vgg.stride must be one of .* dividing'),
    ('baseline.preset', 'dino', r"config.baseline.preset must be one of \('dvd', 'asic'\)"),
    ('eval.threshold', 'box', r"config.eval.threshold must be one of \('', 'bbox', 'img', "
     r"'kp_bbox'\), got 'box'"),
    ('eval.transfer', 'knn', r"config.eval.transfer must be one of \('nearest', 'soft', "
     r"'refine'\)"),
    ('eval.refine_sigma', 0.0, r'config.eval.refine_sigma must be > 0'),
    ('train.log_every', 0, 'config.train.log_every must be >= 1'),
    ('loss.form', 'both', r"config.loss.form must be one of \('paper', 'released'\)"),
    ('loss.tv', -1.0, r'config.loss.tv must be >= 0, got -1.0'),
    ('data.img_size', 100, 'multiple of 16'),
    ('loss.recon_size', 12, 'a divisor of data.img_size, got 12'),
    ('augment.tps_scale', 0.5, r'in \[0, 0.5\)'),
    ('train.batch_size', 5, 'an even number'),
    ('data.synthetic.num_images', 1, r'config.data.synthetic.num_images must be >= 2, got 1'),
])
def test_a_bad_value_is_named(field, value, message):
  with pytest.raises(UserError, match=message):
    validate.check(load_config('tiny', **{field: value}))


def test_the_first_bad_field_is_the_one_named():
  config = config_lib.base_config('')
  config.train.log_every, config.eval.bn_chunk = 0, 0
  with pytest.raises(UserError, match='train.log_every') as error:
    validate.check(config)
  assert 'bn_chunk' not in str(error.value)
