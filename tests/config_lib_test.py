"""Tests of asic_jax.config_lib: the arg's words and presets, benchmark categories, the sweeps
of a benchmark config, dotted keys and the hash that names a training run."""

import pytest

from asic_jax import config_lib
from asic_jax.errors import UserError
from conftest import load_config


def test_config_arg_parsing():
  assert config_lib.parse_arg('cat,released') == (['cat'], {'released'})
  assert config_lib.parse_arg(' cat , ,cpu,dinov2 ') == (['cat'], {'cpu', 'dinov2'})
  assert config_lib.parse_arg('') == ([], set())
  assert config_lib.parse_arg(None) == ([], set())


def test_presets_and_words_change_what_they_name_and_nothing_else():
  paper = config_lib.base_config('')
  assert (paper.loss.kp, paper.loss.tv, paper.loss.mask, paper.parts.num_parts) == (10.0, 9000.0,
                                                                                    1.0, 8)
  released = config_lib.base_config('released')
  assert (released.preset, released.loss.form, released.optim.schedule) == ('released', 'released',
                                                                            'cosine_restarts')
  assert (released.loss.kp, released.loss.tv, released.loss.mask) == (30.0, 15000.0, 0.1)
  assert released.parts.num_parts == 4 and released.loss.perceptual == 'vgg_ssl'
  recommended = config_lib.base_config('recommended')
  assert (recommended.features.orient, recommended.eval.transfer, recommended.optim.schedule,
          recommended.eval.congeal_steps) == (True, 'nearest', 'cosine', 5)
  cpu = config_lib.base_config('cpu')
  assert (cpu.data.img_size, cpu.train.num_steps, cpu.features.backbone) == (128, 1200, 'vgg16')
  # Each word changes only its own keys: the rest stays the paper's.
  changed = lambda c: {k for k in _flat(paper) if _flat(c)[k] != _flat(paper)[k]}
  assert changed(recommended) == {'features.orient', 'eval.congeal_steps', 'optim.schedule'}
  assert changed(config_lib.base_config('dinov2')) == {'features.backbone'}  # masks: coseg
  # Words compose: the released losses at the cpu shape, recommended on top.
  both = config_lib.base_config('released,cpu,recommended')
  assert (both.loss.form, both.data.img_size, both.optim.schedule) == ('released', 128, 'cosine')


def _flat(config) -> dict:
  out = {}

  def walk(node, prefix):
    for key, value in node.items():
      if hasattr(value, 'items'):
        walk(value, f'{prefix}{key}.')
      else:
        out[f'{prefix}{key}'] = value

  walk(config, '')
  return out


@pytest.mark.parametrize('name', ['base', 'folder', 'tiny'])
def test_a_word_the_config_would_ignore_is_an_error(name):
  assert load_config(name, 'released').preset == 'released'
  with pytest.raises(UserError, match=f"configs/{name}.py takes only .* got \\['relesed'\\]"):
    load_config(name, 'relesed')


def test_the_cpu_shape_is_refused_by_the_tiny_config_whose_shapes_would_override_it():
  assert load_config('folder', 'cpu').data.img_size == 128
  with pytest.raises(UserError, match="tiny.py is already a CPU run.*'cpu' flag"):
    load_config('tiny', 'cpu')


def test_the_dinov2_word_picks_the_backbone_and_keeps_the_rest():
  spair = load_config('spair', 'cat,dinov2')
  assert (spair.data.category, spair.features.backbone, spair.features.dinov2.model,
          spair.features.masks) == ('cat', 'dinov2', 'facebook/dinov2-small', 'coseg')
  assert spair.features.model == load_config('spair', 'cat').features.model  # DINO's, unused
  cpu = load_config('pfwillow', 'duck,cpu,dinov2')  # the cpu shape, DINOv2 instead of VGG-16
  assert (cpu.data.img_size, cpu.features.backbone, cpu.features.masks) == (128, 'dinov2', 'coseg')
  with pytest.raises(UserError, match=r"spair.py takes one category, got \['cat', 'dino2'\]"):
    load_config('spair', 'cat,dino2')


def test_benchmark_config_names_the_category_or_the_valid_ones():
  kwargs = dict(config_file='configs/x.py', data_name='cub', dataset='CUB', categories=(1, 2, 3))
  assert config_lib.benchmark_config('', default=1, **kwargs).data.category == 1
  c = config_lib.benchmark_config('2,released', default=1, **kwargs)
  assert (c.data.name, c.data.category, c.preset) == ('cub', 2, 'released')  # the id, not '2'
  with pytest.raises(UserError, match=r"unknown CUB class '7'; valid: 1, 2, 3"):
    config_lib.benchmark_config('7', default=1, label='class', **kwargs)
  with pytest.raises(UserError, match=r"configs/x.py takes one category, got \['1', '2'\]"):
    config_lib.benchmark_config('1,2', default=1, **kwargs)


def _sweep(arg, categories=('a', 'b')):
  runs = []
  config_lib.category_sweep(lambda **o: runs.append(o), arg, categories)
  return runs


def test_category_sweeps():
  assert _sweep('') == [{'data.category': 'a'}, {'data.category': 'b'}]
  ablation = _sweep('ablation')
  assert len(ablation) == 2 * len(config_lib.ABLATION)
  assert {
      'data.category': 'a',
      'variant': 'no_recon',
      'loss.recon': 0.0,
      'loss.mask': 0.0
  } in ablation
  assert _sweep('presets', ('a',)) == [{
      'data.category': 'a',
      'preset': 'paper'
  }, {
      'data.category': 'a',
      'preset': 'released'
  }]
  # Seeds: seed 0 is the default run (no override), the others name theirs.
  assert _sweep('seeds', ('a',)) == [{
      'data.category': 'a'
  }, {
      'data.category': 'a',
      'seed': 1
  }, {
      'data.category': 'a',
      'seed': 2
  }]
  # Baselines run once per category whatever the seeds.
  baselines = _sweep('baselines,seeds', ('a',))
  assert [r.get('baseline.method') for r in baselines] == [None, None, None, 'nn', 'mls']
  assert all(r.get('mode') == 'baseline' for r in baselines[3:])


def test_dotted_keys():
  c = config_lib.base_config()
  assert config_lib.get(c, 'model.grid_size') == 256
  assert config_lib.get({'a': {'b': 3}}, 'a.b') == 3
  assert config_lib.parent({'a': {}}, 'x.y') == (None, 'y')
  assert config_lib.within('eval.step', ('eval',)) and config_lib.within('eval', ('eval',))
  assert not config_lib.within('evaluation', ('eval',))
  assert config_lib.is_eval_setting('features.cache_dir')
  assert not config_lib.is_eval_setting('features.backbone')


def test_the_hash_names_a_training_run_and_ignores_evaluation_settings():
  c = config_lib.base_config()
  same = config_lib.base_config()
  same.eval.transfer, same.mode, same.data.root = 'refine', 'eval', '/elsewhere'
  assert config_lib.config_hash(c) == config_lib.config_hash(same)
  assert len(config_lib.config_hash(c)) == 12
  other = config_lib.base_config()
  other.model.grid_size = 128
  assert config_lib.config_hash(c) != config_lib.config_hash(other)
  # The hash does not change the config it reads.
  assert c.eval.transfer == 'nearest' and 'eval' in c
