"""Test-time congealing of the canonical map (`eval.congeal_steps`; README "Accuracy on real
photos").

The trained U-Net's map is smooth and coarse: its nearest-canonical transfer is consistent
round any cycle of images but trails the backbone's own matches in precision, while refining
each transfer by the source point's descriptor (`eval.transfer='refine'`) is precise but
breaks the cycles. Congealing refines the maps themselves, jointly, so that every transfer
still goes through the one canonical space:

1. Every descriptor cell of every photo (the backbone's matching layer, oriented as the run
   was: `extract.match_descriptors`) sits at a canonical point, the photo's flow at the cell
   centre. Splatting the foreground cells' unit descriptors bilinearly onto a G x G grid
   of the canonical square (`eval.congeal_grid`) and normalising gives a template: what the
   collection looks like at each canonical point.
2. Each cell moves to the template's softmax-weighted mean position, the weights
   softmax(cos / temperature - d^2 / (2 sigma^2)) over the G x G points: cos the cosine
   similarity of the cell's descriptor to the template point's, d the distance from the
   cell's canonical point under the trained map (a Gaussian prior of `eval.congeal_sigma`
   times the canonical side; `eval.congeal_temperature`).
3. The template is rebuilt from the moved cells and step 2 repeats from the trained map's
   points, `eval.congeal_steps` times in all. Each photo's flow then gets its cells'
   displacements, read bilinearly at every pixel.

The transfer (`eval.transfer`, the paper's nearest by default) then runs through the congealed
flows; so do the flows, canonical maps, figures, explorer and API. Photos mapped later
(`Alignment.map`, `mode=map`) take step 2 once against the collection's last template, which
leaves the collection's own flows as they were.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asic_jax import flows as flows_lib
from asic_jax.correspondences import matching
from asic_jax.evaluation import transfer

FOREGROUND = 0.5  # cells that build the template: the mask at the cell centre >= this


class Settings(NamedTuple):
  """`eval.congeal_*`: steps (0: off), sigma (a fraction of the canonical side), temperature
  (of cosine similarities) and the template's grid side G."""
  steps: int
  sigma: float
  temperature: float
  grid: int

  @classmethod
  def of(cls, config: ml_collections.ConfigDict) -> 'Settings':
    e = config.eval
    return cls(int(e.congeal_steps), float(e.congeal_sigma), float(e.congeal_temperature),
               int(e.congeal_grid))


def grid_points(side: int) -> jax.Array:
  """`[side * side, 2]` (x, y) points of a side x side grid over the canonical square [-1, 1]²,
  row-major (corner-aligned: the first is (-1, -1), the last (1, 1))."""
  g = jnp.linspace(-1.0, 1.0, side)
  ys, xs = jnp.meshgrid(g, g, indexing='ij')
  return jnp.stack([xs, ys], -1).reshape(-1, 2)


def at_cells(fields: jax.Array, centers: jax.Array) -> jax.Array:
  """`fields [N, S, S, C]` (flows, masks) read at the cell centres `[h, w, 2]` (pixels) as a
  point of each image is (`transfer.canonical_points`: bilinear, border) -> `[N, h, w, C]`."""
  points = centers.reshape(-1, 2).astype(jnp.float32)
  read = jax.vmap(lambda f: transfer.canonical_points(f, points))(fields)
  return read.reshape(fields.shape[:1] + centers.shape[:2] + fields.shape[-1:])


def template(points: jax.Array, descriptors: jax.Array, weights: jax.Array,
             side: int) -> jax.Array:
  """The collection's unit descriptor at each of `grid_points(side)`, `[side * side, C]`: the
  cells' descriptors `[..., C]` times `weights [...]` splatted bilinearly from their
  canonical `points [..., 2]` (clipped to the square) and normalised; zero where nothing
  landed."""
  p = points.reshape(-1, 2)
  d = descriptors.reshape(p.shape[0], -1).astype(jnp.float32)
  w = weights.reshape(-1).astype(jnp.float32)
  at = jnp.clip((p + 1.0) / 2.0 * (side - 1), 0.0, side - 1.0)
  low = jnp.clip(jnp.floor(at), 0, max(side - 2, 0)).astype(jnp.int32)
  frac = at - low
  total = jnp.zeros((side * side, d.shape[1]), jnp.float32)
  for dx in (0, 1):
    for dy in (0, 1):
      share = (frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
      index = (jnp.minimum(low[:, 1] + dy, side - 1) * side +
               jnp.minimum(low[:, 0] + dx, side - 1))
      total = total.at[index].add((share * w)[:, None] * d)
  return total / jnp.maximum(jnp.linalg.norm(total, axis=-1, keepdims=True), 1e-12)


def move_cells(points: jax.Array, descriptors: jax.Array, found: jax.Array, side: int, *,
               sigma: float, temperature: float) -> jax.Array:
  """Step 2 of one photo: its cells' canonical `points [h, w, 2]` moved to the softmax-weighted
  mean of the template's grid points (`found [G * G, C]`, `descriptors [h, w, C]` unit):
  softmax(cos / temperature - d^2 / (2 (2 sigma)^2)), sigma a fraction of the canonical side
  (which is 2 long). `[h, w, 2]`."""
  grid = grid_points(side)
  p = points.reshape(-1, 2)
  d = descriptors.reshape(p.shape[0], -1).astype(jnp.float32)
  similarity = jnp.matmul(d, found.T, precision=jax.lax.Precision.HIGHEST)
  distance = jnp.sum(jnp.square(p[:, None] - grid[None]), -1)
  logits = similarity / temperature - distance / (2 * (2 * sigma)**2)
  return (jax.nn.softmax(logits, axis=1) @ grid).reshape(points.shape)


def displace(flows: jax.Array, before: jax.Array, after: jax.Array,
             centers: jax.Array) -> jax.Array:
  """`flows [N, S, S, 2]` plus the cells' displacements `after - before` (`[N, h, w, 2]`),
  read at every pixel (`transfer.read_cells`: bilinear in the cells' frame, border)."""
  size = flows.shape[1]
  ys, xs = jnp.meshgrid(jnp.arange(size), jnp.arange(size), indexing='ij')
  pixels = jnp.stack([xs, ys], -1).reshape(-1, 2).astype(jnp.float32)
  moved = jax.vmap(lambda d: transfer.read_cells(d, centers, pixels))(after - before)
  return flows + moved.reshape(flows.shape)


@functools.partial(jax.jit, static_argnames=('side', 'sigma', 'temperature'))
def _align(flows, descriptors, centers, found, *, side, sigma, temperature):
  before = at_cells(flows, centers)
  after = jax.lax.map(
      lambda a: move_cells(a[0], a[1], found, side, sigma=sigma, temperature=temperature),
      (before, descriptors))
  return displace(flows, before, after, centers)


@functools.partial(jax.jit, static_argnames=('steps', 'side', 'sigma', 'temperature'))
def _congeal(flows, descriptors, centers, weights, *, steps, side, sigma, temperature):
  before = at_cells(flows, centers)
  points, found = before, None
  for _ in range(steps):
    found = template(points, descriptors, weights, side)
    points = jax.lax.map(
        lambda a, f=found: move_cells(a[0], a[1], f, side, sigma=sigma, temperature=temperature),
        (before, descriptors))
  return displace(flows, before, points, centers), found


def congeal(flows: jax.Array, descriptors: jax.Array, centers: jax.Array, masks: jax.Array,
            settings: Settings) -> tuple[jax.Array, jax.Array | None]:
  """Congealed `flows [N, S, S, 2]` of a collection and the last template (`[G * G, C]`; None
  when `settings.steps` is 0, which returns the flows as they are).

  Args:
    flows: the network's flows of the photos.
    descriptors: `[N, h, w, C]` descriptors of the photos (any norm: made unit here).
    centers: `[h, w, 2]` cell centres (pixels of the S frame).
    masks: `[N, S, S]`: cells with mask >= 0.5 at their centre build the template.
    settings: `Settings`.
  """
  if settings.steps <= 0:
    return jnp.asarray(flows), None
  centers = jnp.asarray(centers, jnp.float32)
  unit = matching.l2_normalize(jnp.asarray(descriptors, jnp.float32))
  foreground = at_cells(jnp.asarray(masks, jnp.float32)[..., None], centers)[..., 0]
  weights = (foreground >= FOREGROUND).astype(jnp.float32)
  return _congeal(jnp.asarray(flows),
                  unit,
                  centers,
                  weights,
                  steps=settings.steps,
                  side=settings.grid,
                  sigma=settings.sigma,
                  temperature=settings.temperature)


def align(flows: jax.Array, descriptors: jax.Array, centers: jax.Array, found: jax.Array,
          settings: Settings) -> jax.Array:
  """Photos outside the collection: their `flows [M, S, S, 2]` after one move of their cells
  (`descriptors [M, h, w, C]`) against a collection's last template `found` (`congeal`)."""
  return _align(jnp.asarray(flows),
                matching.l2_normalize(jnp.asarray(descriptors, jnp.float32)),
                jnp.asarray(centers, jnp.float32),
                jnp.asarray(found),
                side=settings.grid,
                sigma=settings.sigma,
                temperature=settings.temperature)


def collection_flows(config: ml_collections.ConfigDict, state,
                     collection) -> tuple[jax.Array, jax.Array | None]:
  """The flows every output reads: the network's (`flows_lib.collection_flows`), congealed
  when `eval.congeal_steps` > 0 (with the backbone's descriptors, from the extraction cache);
  and the last template (None when off)."""
  flows = flows_lib.collection_flows(config, state, collection.images, flipped=collection.flipped)
  settings = Settings.of(config)
  if settings.steps <= 0:
    return flows, None
  from asic_jax.correspondences import extract  # pylint: disable=import-outside-toplevel
  grids, centers = extract.match_descriptors(collection, config)
  return congeal(flows, grids, centers, np.asarray(collection.masks_or_ones()), settings)
