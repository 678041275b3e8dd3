"""The training objective of one device: its share of the global batch, both forward
passes, and every loss term.

Randomness is drawn for the whole global batch from one key (pairs, their
direction, one thin-plate warp and one colour jitter per image) and each device
takes its slice, so a run gives the same batch whatever the device count. The
device's images are ordered [sources; targets]: pair i is (i, p + i).
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from asic_jax import losses
from asic_jax.models.asic import Asic
from asic_jax.ops import augment, flip, sampling, tps
from asic_jax.parallel import AXIS, device_slice

TERMS = ('kp', 'equi', 'tv', 'recon', 'mask', 'parts')
# Column order of a match seen from the other image: (x_b, y_b, x_a, y_a, similarity).
_SWAPPED = jnp.asarray([2, 3, 0, 1, 4])


@dataclasses.dataclass(frozen=True)
class Objective:
  """The loss of one device's batch; static settings come from the config.

  Attributes:
    model: the `Asic` module (with `bn_axis_name=AXIS`).
    config: the run's config (read: loss, augment, parts, train.batch_size).
    num_devices: devices sharing the global batch.
    perceptual: `fn(params, x, y) -> [B]` when Recon is on, else None.
  """
  model: Asic
  config: ml_collections.ConfigDict
  num_devices: int
  perceptual: Callable | None = None

  @property
  def pairs_per_device(self) -> int:
    return self.config.train.batch_size // 2 // self.num_devices

  def sample(self, key: jax.Array, data: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """This device's batch: image indices `[2p]`, matches `[p, K, 5]`, per-image keys."""
    num_pairs = self.config.train.batch_size // 2
    p = self.pairs_per_device
    k_pick, k_swap, k_tps, k_jitter = jax.random.split(key, 4)
    listed = data['pairs'].shape[0]
    pick = jax.random.choice(k_pick, listed, (num_pairs,), replace=num_pairs > listed)
    swap = jax.random.bernoulli(k_swap, 0.5, (num_pairs,))
    pick, swap = device_slice(pick, p), device_slice(swap, p)
    pairs = jnp.where(swap[:, None], data['pairs'][pick][:, ::-1], data['pairs'][pick])
    matches = data['matches'][pick]
    matches = jnp.where(swap[:, None, None], matches[..., _SWAPPED], matches)

    def image_keys(k):  # global order [sources; targets] -> this device's [sources; targets]
      keys = jax.random.split(k, 2 * num_pairs).reshape(2, num_pairs)
      return device_slice(keys, p, axis=1).reshape(2 * p)

    return dict(index=jnp.concatenate([pairs[:, 0], pairs[:, 1]]),
                matches=matches,
                tps_keys=image_keys(k_tps),
                jitter_keys=image_keys(k_jitter))

  def __call__(self, params: Any, batch_stats: Any, data: dict[str, jax.Array], frozen: Any,
               key: jax.Array) -> tuple[jax.Array, tuple[dict, Any]]:
    """Total loss and (the weighted terms, the updated BatchNorm statistics).

    Args:
      params: `{'align': ..., 'grid': ...}`.
      batch_stats: the U-Net's BatchNorm running statistics.
      data: the collection on the device: images `[N, S, S, 3]`, flipped `[N]` (bool),
        masks `[N, S, S]`, parts `[N, S, S]`, pairs `[P, 2]`, matches `[P, M, 5]`.
      frozen: the perceptual network's weights (never optimised).
      key: this step's key (the same on every device).
    """
    loss_cfg, aug = self.config.loss, self.config.augment
    form, p = loss_cfg.form, self.pairs_per_device
    batch = self.sample(key, data)
    images = data['images'][batch['index']]
    masks = data['masks'][batch['index']]
    parts = data['parts'][batch['index']]
    flipped = data['flipped'][batch['index']]

    def forward(x, stats):
      # A flipped image is seen mirrored and its flow mirrored back: every loss below works
      # in the photos' own pixels (`asic_jax.ops.flip`).
      variables = {'params': params, 'batch_stats': stats}
      flow, updates = self.model.apply(variables,
                                       flip.mirror(x, flipped),
                                       train=True,
                                       mutable=['batch_stats'])
      return flip.mirror(flow, flipped), updates['batch_stats']

    if loss_cfg.equi:
      one = lambda tree: jax.tree.map(lambda t: t[0], tree)  # the single sample of a draw
      jitter = {k: v for k, v in aug.items() if k != 'tps_scale'}
      warp = jax.vmap(lambda k: one(tps.random_tps(k, 1, scale=aug.tps_scale)))(batch['tps_keys'])
      drawn = jax.vmap(lambda k: one(augment.draw_jitter(k, 1, **jitter)))(batch['jitter_keys'])
      images_t = tps.warp(augment.apply_jitter(images, drawn), warp)
      masks_t = (tps.warp(masks[..., None], warp)[..., 0] > 0.5).astype(masks.dtype)

      flow, batch_stats = forward(images, batch_stats)
      flow_of_warped, batch_stats = forward(images_t, batch_stats)
    else:
      flow, batch_stats = forward(images, batch_stats)
    terms = dict.fromkeys(TERMS, jnp.zeros(()))
    terms['kp'] = losses.kp_loss(flow[:p],
                                 flow[p:],
                                 batch['matches'],
                                 weight=loss_cfg.kp,
                                 form=form,
                                 temperature=loss_cfg.kp_temperature,
                                 axis_name=AXIS)
    # TV of the network's own residual: a flipped image's flow starts at the mirrored identity.
    identity = flip.mirror(
        jnp.broadcast_to(sampling.identity_grid(*flow.shape[1:3]), flow.shape), flipped)
    terms['tv'] = losses.tv_loss(flow - identity, weight=loss_cfg.tv, axis_name=AXIS)
    terms['parts'] = losses.parts_loss(flow,
                                       parts,
                                       masks,
                                       weight=loss_cfg.parts,
                                       num_parts=self.config.parts.num_parts,
                                       form=form,
                                       axis_name=AXIS)
    recon_flows, recon_images, recon_masks = [flow], [images], [masks]
    if loss_cfg.equi:
      terms['equi'] = losses.equivariance_loss(flow_of_warped,
                                               tps.warp(flow, warp),
                                               masks_t * masks,
                                               weight=loss_cfg.equi,
                                               form=form,
                                               axis_name=AXIS)
      recon_flows.append(flow_of_warped)
      recon_images.append(images_t)
      recon_masks.append(masks_t)
    if loss_cfg.recon or loss_cfg.mask:
      size = loss_cfg.recon_size
      # Original and warped copies stacked: a plain mean is the paper's average of both.
      recon = self.model.apply({'params': params},
                               jnp.concatenate(recon_flows),
                               size,
                               method=Asic.reconstruct)
      resize = jax.vmap(lambda x: sampling.resize(x, size, size))
      small_images = resize(jnp.concatenate(recon_images))
      small_masks = resize(jnp.concatenate(recon_masks)[..., None])[..., 0]
      terms['recon'] = losses.recon_loss(recon[..., :3],
                                         small_images,
                                         small_masks,
                                         weight=loss_cfg.recon,
                                         perceptual=self.perceptual,
                                         perceptual_params=frozen,
                                         axis_name=AXIS)
      terms['mask'] = losses.mask_loss(recon[..., 3],
                                       small_masks,
                                       weight=loss_cfg.mask,
                                       axis_name=AXIS)
    total = sum(terms.values())
    return total, (terms, batch_stats)


# What the non-finite flag can name: a loss term, or the gradient (finite terms whose
# gradient is not, e.g. from a sqrt at 0).
FLAGGED = TERMS + ('gradient',)


def first_nonfinite(terms: dict[str, jax.Array], grad_norm: jax.Array) -> jax.Array:
  """Index in `FLAGGED` of the first non-finite term (then the gradient), or -1."""
  finite = jnp.stack([jnp.isfinite(terms[name]) for name in TERMS] + [jnp.isfinite(grad_norm)])
  return jnp.where(jnp.all(finite), -1, jnp.argmin(finite))
