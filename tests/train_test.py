"""The data-parallel step, resume, the non-finite stop, and learning on synthetic data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asic_jax import checkpoint, objective, optim, parallel, train
from asic_jax.data import synthetic
from asic_jax.errors import NonFiniteError
from asic_jax.ops import sampling
from conftest import load_config


def _tiny(**overrides):
  # The perceptual loss stays off here (its own tests cover it): compile time.
  base = {'loss.recon': 0.0, 'train.log_every': 1}
  base.update(overrides)
  return load_config('tiny', **base)


def _run_steps(config, collection, dp, num_steps):
  tx = optim.make_optimizer(config)
  loss = objective.Objective(model=train.make_model(config), config=config,
                             num_devices=dp.num_devices)
  step = dp.wrap(train.make_step(loss, tx, optim.learning_rate(config), config.seed))
  state = dp.replicate(train.init_state(config, tx, collection.size))
  data = dp.replicate(train.device_data(collection))
  frozen = dp.replicate({})
  for _ in range(num_steps):
    state, _ = step(state, data, frozen)
  return jax.device_get(dp.unreplicate(state))


def test_shard_map_pmap_and_one_device_agree():
  """Both wrappers on 2 devices and 1 device on the same global batch: same parameters.

  Gradients agree to float rounding (~1e-6 relative); Adam's default eps (1e-8)
  would turn rounding noise on near-zero gradients into +-lr sign flips, so
  this test uses eps 1e-3 to compare the step itself, not Adam's conditioning.
  """
  config = _tiny(**{'optim.eps': 1e-3})
  collection = synthetic.make_synthetic(config.data.synthetic, size=config.data.img_size,
                                        num_parts=config.parts.num_parts, seed=0)
  devices = jax.devices()
  assert len(devices) == 2
  shard = _run_steps(config, collection, parallel.DataParallel('shard_map', devices), 3)
  pmap = _run_steps(config, collection, parallel.DataParallel('pmap', devices), 3)
  single = _run_steps(config, collection, parallel.DataParallel('shard_map', devices[:1]), 3)
  assert int(shard.step) == int(pmap.step) == int(single.step) == 3
  initial = train.init_state(config, optim.make_optimizer(config), collection.size)
  moved = max(np.max(np.abs(x - y)) for x, y in zip(jax.tree.leaves(shard.params),
                                                     jax.tree.leaves(initial.params)))
  # Three Adam steps move parameters by up to ~3e-3 (lr 1e-3); the runs agree far closer.
  assert moved > 1e-3
  for name, other in (('pmap', pmap), ('1 device', single)):
    worst = max(np.max(np.abs(x - y)) for x, y in zip(jax.tree.leaves(shard.params),
                                                      jax.tree.leaves(other.params)))
    assert worst < 1e-5, f'{name}: max parameter difference {worst}'


def test_pairs_must_divide_by_devices(tmp_path):
  config = _tiny(**{'train.batch_size': 6})  # 3 pairs on 2 devices
  with pytest.raises(ValueError, match='3 pairs per step, which does not divide by the 2 devices'):
    train.train_and_evaluate(config, tmp_path)


def test_resume_is_bit_exact(tmp_path):
  straight = _tiny(**{'train.num_steps': 4, 'checkpoint.every': 2})
  train.train_and_evaluate(straight, tmp_path / 'straight')
  first = _tiny(**{'train.num_steps': 2, 'checkpoint.every': 2})
  train.train_and_evaluate(first, tmp_path / 'resumed')
  train.train_and_evaluate(straight, tmp_path / 'resumed')

  def final(workdir):
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    template = train.init_state(straight, optim.make_optimizer(straight), 32)
    step, state = ckpt.restore(template)
    assert step == 4 and ckpt.all_steps() == [2, 4]
    return jax.device_get(state)

  a, b = final(tmp_path / 'straight'), final(tmp_path / 'resumed')
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  lines = (tmp_path / 'resumed' / 'metrics.jsonl').read_text().splitlines()
  assert len(lines) == 4  # steps 1, 2 then 3, 4 after the restart


def test_nonfinite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
  config = _tiny(**{'train.num_steps': 2, 'checkpoint.every': 2})
  train.train_and_evaluate(config, tmp_path)
  from asic_jax import losses
  real_tv = losses.tv_loss
  monkeypatch.setattr(losses, 'tv_loss', lambda *a, **k: real_tv(*a, **k) * np.nan)
  config = _tiny(**{'train.num_steps': 6, 'checkpoint.every': 2, 'train.log_every': 3})
  with pytest.raises(NonFiniteError, match=r'non-finite tv loss at step 3; stopped, the last '
                     r'checkpoint \(step 2\) is intact'):
    train.train_and_evaluate(config, tmp_path)
  ckpt = checkpoint.Checkpointer(tmp_path, read_only=True)
  assert ckpt.all_steps() == [2]
  step, state = ckpt.restore(train.init_state(config, optim.make_optimizer(config), 32))
  assert step == 2 and all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


def test_training_beats_the_identity_map_on_synthetic_data(tmp_path):
  """A short run transfers ground-truth keypoints better than the identity map."""
  config = _tiny(**{'train.num_steps': 150, 'data.img_size': 64, 'train.batch_size': 8,
                    'data.synthetic.num_images': 8, 'loss.recon_size': 32,
                    'model.grid_size': 64, 'train.log_every': 50, 'checkpoint.every': 150})
  result = train.train_and_evaluate(config, tmp_path)
  collection = synthetic.make_synthetic(config.data.synthetic, size=64,
                                        num_parts=config.parts.num_parts, seed=config.seed)
  flows = np.broadcast_to(sampling.identity_grid(64, 64)[None], (len(collection), 64, 64, 2))
  baseline = train.pck_of_flows(jnp.asarray(flows), collection)
  trained = result['pck']
  print('identity', baseline['pck@0.10'], 'trained', trained['pck@0.10'])
  assert trained['pck@0.10'] > baseline['pck@0.10'] + 0.1
