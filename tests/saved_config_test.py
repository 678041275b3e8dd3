"""Tests of asic_jax.saved_config: a run's saved config read back over today's defaults (every
reload of an older run goes through `from_saved`), a later command line's evaluation settings
over it, and what a resumed run may change.

`fixtures/config_of_an_older_run.json` is the config.json of a real run (PF-WILLOW duck, the
cpu shape) saved before `features.dinov2` and `eval.refine_sigma` existed, while
`eval.refine_window` (since removed) did, with `data.category`, which only benchmark configs
add.
"""

import json

import ml_collections
import pytest

from asic_jax import config_lib, saved_config, validate
from conftest import FIXTURES

OLDER = FIXTURES / 'config_of_an_older_run.json'


def _flat(tree, prefix=''):
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


@pytest.fixture
def older():
  return json.loads(OLDER.read_text())


def test_an_older_run_keeps_every_saved_value(older):
  config = saved_config.from_saved(older)
  got = _flat(json.loads(config.to_json()))
  for key, value in _flat(older).items():
    assert got[key] == value, key
  assert (config.data.name, config.data.category, config.model.grid_size) == ('pfwillow', 'duck',
                                                                              128)


def test_keys_added_since_the_run_take_todays_defaults(older):
  defaults = config_lib.base_config()
  config = saved_config.from_saved(older)
  missing = set(_flat(defaults.to_dict())) - set(_flat(older))
  assert missing == {
      'eval.refine_sigma', 'features.dinov2.model', 'eval.congeal_steps', 'eval.congeal_sigma',
      'eval.congeal_temperature', 'eval.congeal_grid'
  }
  for key in missing:
    assert config_lib.get(config, key) == config_lib.get(defaults, key)
  assert config.features.dinov2.model == 'facebook/dinov2-small'
  assert config.eval.refine_sigma == 0.08
  assert config.eval.congeal_steps == 0  # an older run reads its trained map as it was


def test_keys_removed_since_the_run_are_kept_and_inert(older):
  config = saved_config.from_saved(older)
  assert config.eval.refine_window == 0.1  # read by nothing any more
  validate.check(config)  # the older run still passes today's checks
  # It is the same training run as today's config of the same settings: the old key sits in
  # `eval`, which names no run.
  today = config_lib.base_config('cpu')
  today.data.name, today.data.category, today.data.root = 'pfwillow', 'duck', '/elsewhere'
  today.checkpoint.keep, today.vis.enabled = 5, False
  assert saved_config.changed_settings(config, today) == []


def test_a_saved_value_of_another_type_is_kept_as_saved(older):
  older['baseline']['layer'] = ''  # today an int (-1); '' also means "the preset's"
  older['eval']['cycle_ks'] = [2]
  older['added_by_a_fork'] = {'depth': 3}
  config = saved_config.from_saved(older)
  assert config.baseline.layer == ''
  assert tuple(config.eval.cycle_ks) == (2,)
  assert isinstance(config.added_by_a_fork, ml_collections.ConfigDict)
  assert config.added_by_a_fork.depth == 3


def test_todays_config_reads_back_as_itself():
  for arg in ('', 'released', 'cpu,dinov2,recommended'):
    config = config_lib.base_config(arg)
    again = saved_config.from_saved(json.loads(config.to_json()))
    assert again.to_json() == config.to_json()
    assert config_lib.config_hash(again) == config_lib.config_hash(config)


def test_overlay_takes_only_the_command_lines_evaluation_settings(older):
  saved = saved_config.from_saved(older)
  assert saved_config.overlay(None, saved).eval.transfer == 'nearest'  # None: as saved
  cli = config_lib.base_config('recommended')
  cli.mode, cli.data.root, cli.model.grid_size = 'eval', '/data', 64
  cli.eval.transfer = 'refine'
  trained = saved_config.overlay(cli, saved_config.from_saved(older))
  assert (trained.mode, trained.data.root, trained.eval.transfer) == ('eval', '/data', 'refine')
  assert trained.eval.refine_sigma == cli.eval.refine_sigma
  assert trained.eval.congeal_steps == 5  # test-time settings are the command line's too
  assert trained.model.grid_size == 128  # the weights' shape is the run's
  assert trained.features.orient is False  # so is how its collection was oriented


def test_changed_settings_names_what_a_resume_may_not_change():
  saved = config_lib.base_config()
  current = config_lib.base_config()
  current.train.num_steps, current.checkpoint.every, current.eval.transfer = 5, 7, 'soft'
  current.parallel, current.features.batch_size = 'pmap', 1
  assert saved_config.changed_settings(saved, current) == []
  current.loss.kp, current.data.img_size = 5.0, 64
  assert saved_config.changed_settings(
      saved, current) == ['data.img_size: 256 -> 64', 'loss.kp: 10.0 -> 5.0']
  # A key only one side has is a difference too.
  with current.ignore_type():
    current.data.category = 'duck'
  assert 'data.category: None -> ' + repr('duck') in saved_config.changed_settings(saved, current)
