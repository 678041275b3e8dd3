"""A trained run read back: its config and state at the newest checkpoint that reads or at a
given step, a warm start's weights, the same-run check (training and sweeps), and the settings
a job on a trained run ignores."""

import shutil

import jax
import numpy as np
import pytest

from asic_jax import checkpoint, optim, restore
from asic_jax import train_state
from asic_jax.errors import UserError
from conftest import load_config

REMEDY = 'Give another --workdir'


def _saved(workdir, config, step=5):
  """A checkpoint of `config` at `step` whose state is a stand-in (the check reads configs)."""
  ckpt = checkpoint.Checkpointer(workdir)
  ckpt.save(step, {'x': np.zeros(2, np.float32)}, config)
  ckpt.close()


def test_restore_run_takes_the_newest_checkpoint_and_the_command_lines_eval_settings(tiny_run):
  """The run's model and data settings come from the checkpoint; only the evaluation settings
  (`EVAL_SETTINGS`) from the command line; the state is the one saved at that step."""
  cli = load_config('tiny', **{'mode': 'eval', 'eval.transfer': 'soft', 'seed': 7})
  config, collection, state, step = restore.restore_run(cli, tiny_run)
  assert step == 20 and int(state.step) == 20
  assert (config.mode, config.eval.transfer, config.seed) == ('eval', 'soft', 0)
  assert len(collection) == config.data.synthetic.num_images == 6
  saved = checkpoint.Checkpointer(tiny_run, read_only=True)
  _, expected = saved.restore(restore.abstract_state(config), 20)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(a, b)
  earlier = restore.restore_run(None, tiny_run, step=10)
  assert earlier[3] == 10 and int(earlier[2].step) == 10 and earlier[0].mode == 'train'
  with pytest.raises(UserError, match=r'step=15: no such checkpoint .*saved steps: 10, 20'):
    restore.restore_run(None, tiny_run, step=15)


def test_no_checkpoint_is_one_line(tmp_path):
  with pytest.raises(UserError, match='no checkpoint in .*; train first'):
    restore.restore_run(None, tmp_path)
  assert restore.saved_run(tmp_path) is None


def test_the_same_run_may_change_what_a_resume_may_change_and_nothing_else(tmp_path):
  config = load_config('tiny')
  restore.check_same_run(config, tmp_path, remedy=REMEDY)  # nothing saved: a new run
  _saved(tmp_path, config)
  longer = load_config('tiny', **{'train.num_steps': 500, 'checkpoint.every': 7, 'mode': 'eval'})
  restore.check_same_run(longer, tmp_path, remedy=REMEDY)
  other = load_config('tiny', **{'optim.lr': 0.5, 'model.grid_size': 16})
  with pytest.raises(UserError) as refused:
    restore.check_same_run(other, tmp_path, remedy=REMEDY)
  message = str(refused.value)
  assert message.startswith(f'{tmp_path} holds another run (config ')
  assert ' at step 5; this one is ' in message and message.endswith(f'. {REMEDY}')
  assert 'model.grid_size: 32 -> 16; optim.lr: 0.001 -> 0.5' in message


def test_a_strict_check_reads_config_json_without_a_checkpoint(tmp_path):
  """A sweep's workdir whose record names another config, its checkpoints removed: its
  config.json decides, and without one it is refused."""
  config = load_config('tiny')
  with pytest.raises(UserError, match='without a checkpoint or a config.json that reads'):
    restore.check_same_run(config, tmp_path, remedy=REMEDY, strict=True)
  longer = load_config('tiny', **{'train.num_steps': 500})
  (tmp_path / 'config.json').write_text(longer.to_json())
  restore.check_same_run(config, tmp_path, remedy=REMEDY, strict=True)
  (tmp_path / 'config.json').write_text(load_config('tiny', seed=3).to_json())
  with pytest.raises(UserError, match=r'in its config.json; this one is .*\): seed: 3 -> 0'):
    restore.check_same_run(config, tmp_path, remedy=REMEDY, strict=True)
  assert (tmp_path / 'config.json').is_file()  # another run's file is read, never set aside


def test_a_warm_start_has_the_sources_weights_and_a_fresh_optimizer(tiny_run, tmp_path):
  config = load_config('tiny', **{'train.init_from': str(tiny_run), 'seed': 1})
  restore.check_init_from(config)
  tx = optim.make_optimizer(config)
  warm = restore.warm_start(config, tx, config.data.img_size)
  _, _, source = checkpoint.Checkpointer(tiny_run, read_only=True).newest(restore.abstract_state)
  for a, b in zip(jax.tree.leaves((warm.params, warm.batch_stats)),
                  jax.tree.leaves((source.params, source.batch_stats))):
    np.testing.assert_array_equal(a, b)
  fresh = train_state.init_state(config, tx, config.data.img_size)
  assert int(warm.step) == 0 and int(warm.bad_step) == -1
  for a, b in zip(jax.tree.leaves(warm.opt_state), jax.tree.leaves(fresh.opt_state)):
    if a.shape == b.shape and a.dtype == b.dtype and a.ndim:  # Adam's moments: zeros
      np.testing.assert_array_equal(a, b)
  wider = load_config('tiny', **{'train.init_from': str(tiny_run), 'model.grid_size': 64})
  with pytest.raises(UserError, match=r'its model differs .*model.grid_size 32 there, 64 here'):
    restore.check_init_from(wider)
  with pytest.raises(UserError, match='no checkpoint there'):
    restore.check_init_from(load_config('tiny', **{'train.init_from': str(tmp_path)}))


def test_a_damaged_newest_checkpoint_is_skipped_by_readers(tiny_run, tmp_path):
  """Checkpoint 20's config does not read: readers take step 10 for config and state alike."""
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  (workdir / 'checkpoints' / '20' / 'config' / 'metadata').write_bytes(b'\x00{"mode": ')
  assert restore.saved_run(workdir)[0] == 10
  _, _, state, step = restore.restore_run(None, workdir)
  assert step == 10 and int(state.step) == 10


def test_a_job_on_a_trained_run_names_the_settings_it_takes_from_the_run(tiny_run):
  config = load_config('folder', **{'mode': 'eval', 'data.path': '/photos', 'eval.step': 10})
  ignored = restore.ignored_settings(config, tiny_run, given=['eval.step', 'data.img_size'])
  assert ignored == [
      "data.img_size=256 (the run's: 32)", "data.name='folder' (the run's: 'synthetic')",
      "data.path='/photos' (the run's: '')"
  ]
  assert restore.ignored_settings(load_config('tiny', mode='eval'), tiny_run, given=[]) == []
