"""Flows of a whole collection with collection-wide BatchNorm statistics, in one or two passes."""

import jax
import numpy as np

from asic_jax import optim
from asic_jax import flows as flows_lib
from asic_jax import train_state
from conftest import load_config


def _live_state(config):
  state = train_state.init_state(config, optim.make_optimizer(config), config.data.img_size)
  head = state.params['align']['head']
  live = jax.tree.map(lambda x: 0.05 * jax.random.normal(jax.random.key(1), x.shape), head)
  return state.replace(params=dict(state.params, align=dict(state.params['align'], head=live)))


def test_two_pass_statistics_match_one_batch():
  config = load_config('tiny')
  state = _live_state(config)
  images = np.random.default_rng(0).uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
  one = np.asarray(flows_lib.collection_flows(config, state, images))
  np.testing.assert_array_equal(flows_lib.collection_flows(config, state, images, chunk=6), one)
  # Chunks of 3 and 4 (+2): statistics averaged over chunks, then applied; close to one batch.
  for chunk in (3, 4):
    two = np.asarray(flows_lib.collection_flows(config, state, images, chunk=chunk))
    assert np.abs(two - one).max() < 0.05
  # The statistics do not depend on the batch: the first images' flows equal a run of the
  # whole set only when the statistics are the collection's, not the chunk's.
  alone = np.asarray(flows_lib.collection_flows(config, state, images[:3]))
  assert np.abs(alone - one[:3]).max() > np.abs(
      np.asarray(flows_lib.collection_flows(config, state, images, chunk=3))[:3] - one[:3]).max()


def test_a_flipped_image_is_seen_mirrored_and_its_flow_mirrored_back():
  """Orientation: the flow of an image marked flipped is the mirrored flow of its mirror
  image — in one batch, in two passes and with fixed statistics."""
  config = load_config('tiny')
  state = _live_state(config)
  images = np.random.default_rng(0).uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
  flipped = np.asarray([False, True, False, False, True, False])
  seen = np.where(flipped[:, None, None, None], images[:, :, ::-1], images)
  plain = np.asarray(flows_lib.collection_flows(config, state, seen))
  expected = np.where(flipped[:, None, None, None], plain[:, :, ::-1], plain)
  for chunk in (6, 4):
    got = flows_lib.collection_flows(config, state, images, flipped=flipped, chunk=chunk)
    if chunk == 6:
      np.testing.assert_allclose(got, expected, atol=1e-6)
  stats = flows_lib.statistics(config, state, images, flipped=flipped)
  np.testing.assert_allclose(
      flows_lib.flows_with(config, state, stats, images, flipped=flipped), expected, atol=1e-5)
  # The mirrored flow differs from the plain one: the check has teeth.
  assert np.abs(np.asarray(flows_lib.collection_flows(config, state, images)) - expected).max() > 1e-3
