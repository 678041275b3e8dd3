"""Thin-plate spline warps: fitting, evaluation, random draws and image warping.

A warp is a backward map in the corner-aligned normalised frame of
`asic_jax.ops.sampling`: the output pixel at `v` takes
`grid_sample(input, f(v))`, zeros padding. A spline fitted with
`fit(points=dst, values=src)` satisfies `f(dst_k) = src_k`, so the image
content at `src_k` moves to `dst_k`.

Formulation (the one kornia's `RandomThinPlateSpline` uses, which the released
ASIC code trains with):

    f(v) = a_0 + A v + sum_k w_k U(|v - c_k|),   U(r) = r^2 log r,  U(0) = 0,

with kernel centres `c_k` at the control *values* (`src`), the interpolation
conditions `f(points_k) = values_k` and the side conditions
`sum_k w_k = 0`, `sum_k w_k points_k = 0`. The textbook spline puts the centres
at the interpolation points instead; both agree when `points == values`, but
at the default scale 0.4 they differ by up to ~0.3 (normalised) inside the
image, so we keep kornia's choice: our warps then have exactly the distribution
the released code trained under, and `f` equals kornia's to float rounding.

Frames against kornia: kornia <= 0.8.3 evaluates `f` at these same
corner-aligned `v` but samples with `align_corners=False`; kornia 0.9 evaluates
it at pixel centres `(2 i + 1) / L - 1`. We evaluate and sample in the
corner-aligned frame (DESIGN §8.2), so identical control points give the same
`f`, but where kornia <= 0.8.3 reads the input at pixel `((f + 1) L - 1) / 2`
we read it at `(f + 1) (L - 1) / 2`: `f / 2` pixels apart, about half a pixel
near the border (and kornia blends the border with its zero padding).

Conditioning: the (K + 3) x (K + 3) system is solved in the dtype of the inputs
(float32 by default). With the 4 corners and the centre offset by U(-s, s),
s < 0.5 keeps the control points at least (1 - 2 s) sqrt(2) apart; at s = 0.4
its condition number stayed below 103 over 20,000 draws (float64 numpy), and
float32 sampling grids stayed within 1.2e-6 of float64 ones over 5,000 draws.
From s = 0.5 on, control points can coincide and the system becomes singular,
hence `random_control_points` refuses it.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from asic_jax.ops import sampling

# The 4 corners and the centre, (x, y), in the order kornia draws them.
_BASE_POINTS = ((-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0), (0.0, 0.0))


class Tps(NamedTuple):
  """A thin-plate spline `f: [..., 2] -> [..., 2]`; leading batch dims `[...]` allowed.

  Attributes:
    centres: `[..., K, 2]`, kernel centres `c_k`, (x, y).
    kernel_weights: `[..., K, 2]`, `w_k` (x and y columns).
    affine: `[..., 3, 2]`, rows `a_0`, then the x and y coefficients of `A v`.
  """
  centres: jax.Array
  kernel_weights: jax.Array
  affine: jax.Array


def _kernel(points: jax.Array, centres: jax.Array) -> jax.Array:
  """`U(|p - c|)` for `points [..., N, 2]`, `centres [..., K, 2]` -> `[..., N, K]`."""
  r2 = jnp.sum(jnp.square(points[..., :, None, :] - centres[..., None, :, :]), axis=-1)
  positive = r2 > 0
  # r^2 log r = r^2 log(r^2) / 2; the `where` keeps U(0) = 0 and its gradient finite.
  return jnp.where(positive, 0.5 * r2 * jnp.log(jnp.where(positive, r2, 1.0)), 0.0)


def fit(points: jax.Array, values: jax.Array) -> Tps:
  """The spline with `f(points_k) = values_k` and kernel centres at `values`.

  The system is well conditioned when the offsets `values - points` are small
  against the spacing of the points (as for warps); as they approach it, this
  formulation conditions worse than the textbook one (a condition number past
  1e5 for a jittered 4 x 4 lattice offset by up to 0.45 of its spacing), too
  much for float32.

  Args:
    points: `[..., K, 2]`, where the interpolation conditions hold (`dst`), K >= 3
      and not all on one line.
    values: `[..., K, 2]`, the values there (`src`); also the kernel centres.

  Returns:
    A `Tps` with the batch dims `[...]` of the inputs.
  """
  if points.ndim < 2 or points.shape[-1] != 2 or points.shape[-2] < 3:
    raise ValueError(f'points must be [..., K, 2] with K >= 3, got shape {points.shape}')
  if values.shape != points.shape:
    raise ValueError(f'values must have the shape of points {points.shape}, got {values.shape}')
  *batch, count, _ = points.shape
  ones = jnp.ones((*batch, count, 1), points.dtype)
  poly = jnp.concatenate([ones, points], axis=-1)  # [..., K, 3]
  top = jnp.concatenate([_kernel(points, values), poly], axis=-1)
  corner = jnp.zeros((*batch, 3, 3), points.dtype)
  bottom = jnp.concatenate([jnp.swapaxes(poly, -1, -2), corner], axis=-1)
  system = jnp.concatenate([top, bottom], axis=-2)  # [..., K + 3, K + 3]
  rhs = jnp.concatenate([values, jnp.zeros((*batch, 3, 2), values.dtype)], axis=-2)
  solution = jnp.linalg.solve(system, rhs)
  return Tps(values, solution[..., :count, :], solution[..., count:, :])


def evaluate(tps: Tps, coords: jax.Array) -> jax.Array:
  """`f` of one spline (no batch dims) at `coords [..., 2]` -> `[..., 2]`, (x, y).

  For a batch of splines, `jax.vmap(evaluate)(tps, coords)`.
  """
  if tps.centres.ndim != 2:
    raise ValueError(f'tps must be a single spline (centres [K, 2]), got centres shape '
                     f'{tps.centres.shape}; use jax.vmap for a batch')
  flat = coords.reshape(-1, 2)
  out = tps.affine[0] + flat @ tps.affine[1:] + _kernel(flat, tps.centres) @ tps.kernel_weights
  return out.reshape(coords.shape)


def sampling_grid(tps: Tps, height: int, width: int) -> jax.Array:
  """Where each output pixel samples: `f` at the identity grid.

  Args:
    tps: a batch of B splines (centres `[B, K, 2]`).
    height, width: the output size.

  Returns:
    `[B, height, width, 2]`, (x, y) in the corner-aligned normalised frame.
  """
  identity = sampling.identity_grid(height, width, tps.affine.dtype)
  return jax.vmap(evaluate, in_axes=(0, None))(tps, identity)


def warp(images: jax.Array, tps: Tps, padding: sampling.Padding = 'zeros') -> jax.Array:
  """Backward-warp a batch: `out[b] = grid_sample(images[b], f_b(identity))`.

  Images, masks and flows alike: a flow is resampled as a 2-channel image, its
  values are not transformed (as in the released code).

  Args:
    images: `[B, H, W, C]`.
    tps: B splines (centres `[B, K, 2]`).
    padding: 'zeros' (kornia's, the default) or 'border'.

  Returns:
    `[B, H, W, C]`, in the dtype of `images`.
  """
  if images.ndim != 4:
    raise ValueError(f'images must be [B, H, W, C], got shape {images.shape}')
  if tps.centres.ndim != 3 or tps.centres.shape[0] != images.shape[0]:
    raise ValueError(f'tps must hold one spline per image ({images.shape[0]}), got centres '
                     f'shape {tps.centres.shape}')
  grid = sampling_grid(tps, images.shape[1], images.shape[2])
  return jax.vmap(lambda image, coords: sampling.grid_sample(image, coords, padding))(images, grid)


def random_control_points(key: jax.Array,
                          batch: int,
                          *,
                          scale: float = 0.4) -> tuple[jax.Array, jax.Array]:
  """Control points of B random warps, as DESIGN §3 (and kornia) draw them.

  Args:
    key: a `jax.random` key.
    batch: B.
    scale: the offset bound s, in [0, 0.5): `dst = src + U(-s, s)` per coordinate.

  Returns:
    `(src, dst)`, each `[B, 5, 2]` (x, y): `src` is the 4 corners (-1, -1),
    (-1, 1), (1, -1), (1, 1) and the centre (0, 0).
  """
  if not 0.0 <= scale < 0.5:
    raise ValueError(f'scale must be in [0, 0.5) (from 0.5 on control points can coincide '
                     f'and the spline is singular), got {scale}')
  src = jnp.broadcast_to(jnp.asarray(_BASE_POINTS, jnp.float32), (batch, 5, 2))
  dst = src + jax.random.uniform(key, (batch, 5, 2), jnp.float32, -scale, scale)
  return src, dst


def random_tps(key: jax.Array, batch: int, *, scale: float = 0.4) -> Tps:
  """B random warps (`fit(dst, src)` of `random_control_points`): centres `[B, 5, 2]`."""
  src, dst = random_control_points(key, batch, scale=scale)
  return fit(dst, src)
