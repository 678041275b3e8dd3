"""Colour augmentation of the equivariance loss: kornia's pipeline, in [0, 1] space.

The released code runs kornia's `ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8)`,
`RandomGrayscale(p=0.2)`, `RandomGaussianBlur((3, 3), (0.1, 2.0), p=0.1)` and
`RandomSolarize(0.1, 0.1, p=0.2)`, in that order, on images in [-1, 1], where
ops defined on [0, 1] clamp away the whole negative half. We map to [0, 1]
first, apply each op with the clamping kornia gives it, and map back
(DESIGN §3).

The single ops act on one image `[H, W, 3]` in [0, 1] with scalar parameters;
`draw_jitter` draws every parameter per sample, `apply_jitter` applies them
(vmapped over the batch), `color_jitter` does both. The jitter's four
adjustments run in a random order drawn per sample (kornia draws one order per
call, shared by the batch; per sample keeps every image's draw independent of
the batch it sits in, so of the device count).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

# ITU-R 601 luma, as kornia's `rgb_to_grayscale`.
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def grayscale(image: jax.Array) -> jax.Array:
  """Luma of `[H, W, 3]`, replicated to 3 channels."""
  gray = image @ jnp.asarray(_GRAY_WEIGHTS, image.dtype)
  return jnp.repeat(gray[..., None], 3, axis=-1)


def adjust_brightness(image: jax.Array, factor: jax.Array) -> jax.Array:
  """`clip(factor * image, 0, 1)` (torchvision/PIL brightness)."""
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image: jax.Array, factor: jax.Array) -> jax.Array:
  """Blend with the mean luma of the image: `clip(f x + (1 - f) mean, 0, 1)`."""
  mean = jnp.mean(image @ jnp.asarray(_GRAY_WEIGHTS, image.dtype))
  return jnp.clip(factor * image + (1.0 - factor) * mean, 0.0, 1.0)


def adjust_saturation(image: jax.Array, factor: jax.Array) -> jax.Array:
  """Blend with the per-pixel luma: `clip(f x + (1 - f) gray(x), 0, 1)`."""
  return jnp.clip(factor * image + (1.0 - factor) * grayscale(image), 0.0, 1.0)


def adjust_hue(image: jax.Array, shift: jax.Array) -> jax.Array:
  """Rotate the HSV hue by `shift` turns (kornia's factor / 2 pi).

  RGB -> HSV -> RGB as Python's `colorsys`; grey pixels (no chroma) keep hue 0
  and come back unchanged. Clipped to [0, 1] against rounding only.
  """
  red, green, blue = image[..., 0], image[..., 1], image[..., 2]
  value = jnp.max(image, axis=-1)
  chroma = value - jnp.min(image, axis=-1)
  safe_chroma = jnp.where(chroma > 0, chroma, 1.0)
  saturation = jnp.where(value > 0, chroma / jnp.where(value > 0, value, 1.0), 0.0)
  # Hue in sixths of a turn, by which channel is the maximum (red wins ties, as colorsys).
  sixths = jnp.where(
      red == value, (green - blue) / safe_chroma,
      jnp.where(green == value, 2.0 + (blue - red) / safe_chroma,
                4.0 + (red - green) / safe_chroma))
  turns = jnp.where(chroma > 0, sixths / 6.0, 0.0)
  sixths = jnp.mod(turns + shift, 1.0) * 6.0
  # HSV -> RGB in closed form: channel n in (5, 3, 1) for (r, g, b) is
  # v (1 - s clip(min(k, 4 - k), 0, 1)) with k = (n + 6 h) mod 6.
  k = jnp.mod(jnp.asarray([5.0, 3.0, 1.0], image.dtype) + sixths[..., None], 6.0)
  ramp = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
  rgb = value[..., None] * (1.0 - saturation[..., None] * ramp)
  return jnp.clip(rgb, 0.0, 1.0)


def gaussian_blur(image: jax.Array, sigma: jax.Array) -> jax.Array:
  """3 x 3 Gaussian blur of `[H, W, C]` (H, W >= 2), reflect padding (kornia's).

  Separable kernel `exp(-k^2 / (2 sigma^2))`, k in {-1, 0, 1}, normalised to sum 1.
  """
  squared_offsets = jnp.asarray([1.0, 0.0, 1.0], image.dtype)
  taps = jnp.exp(-squared_offsets / (2.0 * jnp.square(sigma)))
  taps = taps / jnp.sum(taps)
  height, width = image.shape[:2]
  padded = jnp.pad(image, ((1, 1), (1, 1), (0, 0)), mode='reflect')
  rows = sum(taps[k] * padded[k:k + height] for k in range(3))
  return sum(taps[k] * rows[:, k:k + width] for k in range(3))


def solarize(image: jax.Array, threshold: jax.Array, addition: jax.Array) -> jax.Array:
  """kornia's solarize: `y = clip(x + addition, 0, 1)`, then `y` below threshold, else `1 - y`."""
  shifted = jnp.clip(image + addition, 0.0, 1.0)
  return jnp.where(shifted < threshold, shifted, 1.0 - shifted)


class JitterParams(NamedTuple):
  """Per-sample draws of `draw_jitter`; every field has leading dim B.

  Attributes:
    jitter: `[B]` bool, whether the colour jitter runs.
    order: `[B, 4]` int32, a permutation of 0 brightness, 1 contrast,
      2 saturation, 3 hue: the order of the jitter's adjustments.
    brightness, contrast, saturation: `[B]` factors (1 = unchanged).
    hue: `[B]` hue shift in turns (0 = unchanged).
    gray: `[B]` bool.
    blur: `[B]` bool; sigma: `[B]` its standard deviation in pixels.
    solarize: `[B]` bool; threshold, addition: `[B]`.
  """
  jitter: jax.Array
  order: jax.Array
  brightness: jax.Array
  contrast: jax.Array
  saturation: jax.Array
  hue: jax.Array
  gray: jax.Array
  blur: jax.Array
  sigma: jax.Array
  solarize: jax.Array
  threshold: jax.Array
  addition: jax.Array


def _check(name: str, value: float, low: float, high: float) -> None:
  if not low <= value <= high:
    raise ValueError(f'{name} must be in [{low}, {high}], got {value}')


def draw_jitter(key: jax.Array,
                batch: int,
                *,
                brightness: float = 0.4,
                contrast: float = 0.4,
                saturation: float = 0.2,
                hue: float = 0.1,
                jitter_prob: float = 0.8,
                gray_prob: float = 0.2,
                blur_prob: float = 0.1,
                blur_sigma: tuple[float, float] = (0.1, 2.0),
                solarize_prob: float = 0.2,
                solarize_threshold: float = 0.1,
                solarize_addition: float = 0.1) -> JitterParams:
  """Draw the augmentation of B images, independently per sample.

  Args:
    key: a `jax.random` key.
    batch: B.
    brightness, contrast, saturation: b; the factor is U(max(0, 1 - b), 1 + b).
    hue: h in [0, 0.5]; the shift is U(-h, h) turns of the hue circle.
    jitter_prob, gray_prob, blur_prob, solarize_prob: probability of each op.
    blur_sigma: (low, high), sigma ~ U(low, high) pixels, 0 < low <= high.
    solarize_threshold: t in [0, 0.5]; threshold ~ U(0.5 - t, 0.5 + t).
    solarize_addition: a in [0, 0.5); addition ~ U(-a, a).

  Returns:
    `JitterParams`, each field `[B]` (order `[B, 4]`).
  """
  strengths = dict(brightness=brightness, contrast=contrast, saturation=saturation)
  for name, value in strengths.items():
    _check(name, value, 0.0, float('inf'))
  _check('hue', hue, 0.0, 0.5)
  for name, value in (('jitter_prob', jitter_prob), ('gray_prob', gray_prob),
                      ('blur_prob', blur_prob), ('solarize_prob', solarize_prob)):
    _check(name, value, 0.0, 1.0)
  if not 0.0 < blur_sigma[0] <= blur_sigma[1]:
    raise ValueError(f'blur_sigma must be (low, high) with 0 < low <= high, got {blur_sigma}')
  _check('solarize_threshold', solarize_threshold, 0.0, 0.5)
  if not 0.0 <= solarize_addition < 0.5:
    raise ValueError(f'solarize_addition must be in [0, 0.5), got {solarize_addition}')

  # One draw for everything: a single random-bits call compiles far faster than
  # twelve, and the step compiles it on every run.
  u = jax.random.uniform(key, (batch, 15), jnp.float32)
  columns = iter(range(11))

  def uniform(low, high):
    return low + (high - low) * u[:, next(columns)]

  def coin(prob):
    return u[:, next(columns)] < prob

  # argsort of 4 i.i.d. uniforms is a uniformly random permutation.
  order = jnp.argsort(u[:, 11:], axis=-1).astype(jnp.int32)
  return JitterParams(jitter=coin(jitter_prob),
                      order=order,
                      brightness=uniform(max(0.0, 1.0 - brightness), 1.0 + brightness),
                      contrast=uniform(max(0.0, 1.0 - contrast), 1.0 + contrast),
                      saturation=uniform(max(0.0, 1.0 - saturation), 1.0 + saturation),
                      hue=uniform(-hue, hue),
                      gray=coin(gray_prob),
                      blur=coin(blur_prob),
                      sigma=uniform(*blur_sigma),
                      solarize=coin(solarize_prob),
                      threshold=uniform(0.5 - solarize_threshold, 0.5 + solarize_threshold),
                      addition=uniform(-solarize_addition, solarize_addition))


def _apply_one(image: jax.Array, params: JitterParams) -> jax.Array:
  """`apply_jitter` of one `[H, W, 3]` image in [-1, 1] with scalar params."""
  dtype = image.dtype
  # Resizing can overshoot [-1, 1] a little; every op is defined on [0, 1].
  x = jnp.clip((image + 1.0) * 0.5, 0.0, 1.0)
  adjustments = (
      lambda y: adjust_brightness(y, params.brightness.astype(dtype)),
      lambda y: adjust_contrast(y, params.contrast.astype(dtype)),
      lambda y: adjust_saturation(y, params.saturation.astype(dtype)),
      lambda y: adjust_hue(y, params.hue.astype(dtype)),
  )
  jittered = x
  for step in range(4):
    jittered = jax.lax.switch(params.order[step], adjustments, jittered)
  x = jnp.where(params.jitter, jittered, x)
  x = jnp.where(params.gray, grayscale(x), x)
  x = jnp.where(params.blur, gaussian_blur(x, params.sigma.astype(dtype)), x)
  x = jnp.where(params.solarize,
                solarize(x, params.threshold.astype(dtype), params.addition.astype(dtype)), x)
  touched = params.jitter | params.gray | params.blur | params.solarize
  # Untouched samples come back bit for bit, not through the [0, 1] round trip.
  return jnp.where(touched, x * 2.0 - 1.0, image)


def apply_jitter(images: jax.Array, params: JitterParams) -> jax.Array:
  """Apply drawn params: jitter, grayscale, blur, solarize, in kornia's order.

  Args:
    images: `[B, H, W, 3]` in [-1, 1], H, W >= 2.
    params: `JitterParams` of batch B.

  Returns:
    `[B, H, W, 3]` in [-1, 1], dtype of `images`.
  """
  if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < 2:
    raise ValueError(f'images must be [B, H, W, 3] with H, W >= 2, got shape {images.shape}')
  if params.jitter.shape != images.shape[:1]:
    raise ValueError(f'params must hold {images.shape[0]} samples, got '
                     f'{params.jitter.shape}')
  return jax.vmap(_apply_one)(images, params)


def color_jitter(key: jax.Array, images: jax.Array, **options) -> jax.Array:
  """Colour-augment `images [B, H, W, 3]` in [-1, 1], each sample drawn independently.

  Args:
    key: a `jax.random` key.
    images: `[B, H, W, 3]` in [-1, 1], H, W >= 2.
    **options: the keyword arguments of `draw_jitter` (defaults: DESIGN §3);
      all probabilities 0 return `images` unchanged.

  Returns:
    `[B, H, W, 3]` in [-1, 1].
  """
  if images.ndim != 4:
    raise ValueError(f'images must be [B, H, W, 3], got shape {images.shape}')
  return apply_jitter(images, draw_jitter(key, images.shape[0], **options))
