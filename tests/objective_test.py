"""The per-device objective: gradient routing of every term, and the global-batch slicing."""

import jax
import jax.numpy as jnp
import numpy as np

from asic_jax import objective, optim, parallel, train
from asic_jax import train_state
from asic_jax.data import synthetic
from asic_jax.models import asic
from conftest import load_config


def _setup(**overrides):
  config = load_config('tiny', **overrides)
  collection = synthetic.make_synthetic(config.data.synthetic,
                                        size=config.data.img_size,
                                        num_parts=config.parts.num_parts,
                                        seed=0)
  return config, collection


def _live_head(params, scale: float):
  """`params` with a random flow head (it starts at zero: the flow would be the identity)."""
  head = jax.tree.map(lambda x: scale * jax.random.normal(jax.random.key(1), x.shape),
                      params['align']['head'])
  return dict(params, align=dict(params['align'], head=head))


def test_gradient_routing_of_every_term():
  """KP, Equi, TV and Parts never reach the grid; Recon and Mask do; all reach the U-Net.

  The perceptual network is replaced by a per-image L1 distance: routing is a property of
  where the stop-gradients and the grid sampling sit, not of the network (and a VGG would
  triple the compile time of this test).
  """
  weights = dict(kp=1.0, equi=1.0, tv=1.0, recon=1.0, mask=1.0, parts=1.0)
  config, collection = _setup(**{f'loss.{k}': v for k, v in weights.items()})
  dp = parallel.DataParallel('shard_map', jax.devices()[:1])
  l1 = lambda params, x, y: jnp.mean(jnp.abs(x - y), axis=(1, 2, 3))
  loss = objective.Objective(model=asic.make_model(config, bn_axis_name=parallel.AXIS),
                             config=config,
                             num_devices=1,
                             perceptual=l1)
  state = train_state.init_state(config, optim.make_optimizer(config), collection.size)
  # A live head (it starts at zero), so every U-Net layer gets a gradient.
  params = _live_head(state.params, 0.01)

  def jacobian(params, batch_stats, data):
    terms = lambda p: loss(p, batch_stats, data, {}, jax.random.key(3))[1][0]
    return jax.jacrev(terms)(params)

  jac = jax.device_get(
      dp.wrap(jacobian)(*dp.replicate((params, state.batch_stats,
                                       train.device_data(collection, config.parts.num_parts)))))
  for name in objective.TERMS:
    grid = np.abs(jac[name]['grid']).max()
    if name in ('recon', 'mask'):
      assert grid > 0, name
    else:
      assert grid == 0.0, (name, grid)
    align = jax.tree.leaves(jac[name]['align'])
    assert all(np.all(np.isfinite(g)) for g in align), name
    assert max(np.abs(g).max() for g in align) > 0, name


def test_global_batch_is_sliced_per_device():
  """Two devices' batches, put together, are the one-device batch: same pairs, same
  directions, same per-image keys; and no pair joins an image with itself."""
  config, collection = _setup(**{'train.batch_size': 8})
  data = train.device_data(collection, config.parts.num_parts)

  def sampled(devices):
    dp = parallel.DataParallel('shard_map', devices)
    loss = objective.Objective(model=asic.make_model(config, bn_axis_name=parallel.AXIS),
                               config=config,
                               num_devices=dp.num_devices)

    def one(data):
      batch = loss.sample(jax.random.key(7), data)
      batch = dict(batch,
                   tps_keys=jax.random.key_data(batch['tps_keys']),
                   jitter_keys=jax.random.key_data(batch['jitter_keys']))
      return jax.tree.map(lambda x: jax.lax.all_gather(x, parallel.AXIS), batch)

    return jax.device_get(dp.wrap(one)(dp.replicate(data)))

  one, two = sampled(jax.devices()[:1]), sampled(jax.devices())
  p = 4  # pairs in the global batch

  def global_order(batch, devices):
    # Each device holds [its sources; its targets]: regroup as [all sources; all targets].
    per = p // devices
    index = batch['index'].reshape(devices, 2, per)
    keys = {k: batch[k].reshape(devices, 2, per, -1) for k in ('tps_keys', 'jitter_keys')}
    return (index.transpose(1, 0, 2).reshape(-1), batch['matches'].reshape(p, -1, 5), {
        k: v.transpose(1, 0, 2, 3).reshape(2 * p, -1) for k, v in keys.items()
    })

  index1, matches1, keys1 = global_order(one, 1)
  index2, matches2, keys2 = global_order(two, 2)
  np.testing.assert_array_equal(index1, index2)
  np.testing.assert_array_equal(matches1, matches2)
  for k in keys1:
    np.testing.assert_array_equal(keys1[k], keys2[k])
  assert np.all(index1[:p] != index1[p:])
  # Each sampled pair is a listed pair, possibly reversed, with its matches swapped to match.
  listed = {tuple(x) for x in collection.pairs}
  for i in range(p):
    a, b = int(index1[i]), int(index1[p + i])
    if (a, b) in listed:
      row = collection.pairs.tolist().index([a, b])
      np.testing.assert_array_equal(matches1[i], collection.matches[row])
    else:
      row = collection.pairs.tolist().index([b, a])
      np.testing.assert_array_equal(matches1[i], collection.matches[row][:, [2, 3, 0, 1, 4]])


def test_mirrored_photos_marked_flipped_give_the_same_loss():
  """Photos stored mirrored, with their matches, masks and parts mirrored and marked
  flipped, are what the network saw before: KP, TV, Parts and Mask are unchanged (Equi's
  random warps and LPIPS are not mirror-symmetric, so they are off here)."""
  weights = dict(kp=1.0, equi=0.0, tv=100.0, recon=0.0, mask=1.0, parts=1.0)
  config, collection = _setup(**{f'loss.{k}': v for k, v in weights.items()})
  size = collection.size
  loss = objective.Objective(model=asic.make_model(config, bn_axis_name=parallel.AXIS), config=config, num_devices=1)
  state = train_state.init_state(config, optim.make_optimizer(config), size)
  params = _live_head(state.params, 0.05)
  dp = parallel.DataParallel('shard_map', jax.devices()[:1])
  terms = dp.wrap(lambda p, b, d: loss(p, b, d, {}, jax.random.key(3))[1][0])

  def run(data):
    return jax.device_get(terms(*dp.replicate((params, state.batch_stats, data))))

  data = train.device_data(collection, config.parts.num_parts)
  flipped = np.arange(len(collection)) % 2 == 1
  matches = data['matches'].copy()
  real = matches[..., 4] > 0
  for side, column in ((0, 0), (1, 2)):
    moved = flipped[data['pairs'][:, side]][:, None] & real
    matches[..., column] = np.where(moved, size - 1 - matches[..., column], matches[..., column])
  mirror = lambda x: np.where(flipped.reshape((-1,) + (1,) * (x.ndim - 1)), x[:, :, ::-1], x)
  stored = dict(data,
                images=mirror(data['images']),
                masks=mirror(data['masks']),
                parts=mirror(data['parts']),
                matches=matches,
                flipped=flipped)
  before, after = run(data), run(stored)
  for name in ('kp', 'tv', 'parts', 'mask'):
    np.testing.assert_allclose(after[name], before[name], rtol=2e-5, atol=1e-7, err_msg=name)
  assert before['kp'] > 0 and before['tv'] > 0
  # Not marked flipped, the stored photos give another loss: the check has teeth.
  assert abs(run(dict(stored, flipped=np.zeros_like(flipped)))['kp'] - before['kp']) > 1e-3
