"""Reading images: any PIL mode to RGB, square edge-padding, resizing, keypoint frames.

Images are resized by PIL (antialiased bilinear), which treats a pixel as a
unit square: a pixel centre `p` of the original (x or y, 0-based) lands at
`(p + 0.5) * scale - 0.5` in the resized image. `SquareFrame` records the
padding and scale so keypoints follow their image exactly.
"""

import dataclasses
import pathlib
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from asic_jax.errors import UserError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.gif')


def read_rgb(path: str | pathlib.Path) -> np.ndarray:
  """An image file as `[H, W, 3]` uint8 RGB.

  Grayscale (8- or 16-bit), palette, CMYK and float images are converted; an
  alpha channel is composited over white; of several frames (an animated GIF, a
  multi-page TIFF), the first, with a warning. An unreadable file raises `UserError` naming it.
  """
  path = pathlib.Path(path)
  try:
    with Image.open(path) as image:
      image.load()  # the first frame
      if getattr(image, 'n_frames', 1) > 1:
        warnings.warn(f'{path} holds {image.n_frames} frames (an animation, or pages): the '
                      'first is used')
      return _to_rgb(image)
  except FileNotFoundError as e:
    raise UserError(f'image not found: {path}') from e
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise UserError(f'cannot read image {path}: {e}') from e


_WIDE_MODES = ('I;16', 'I;16B', 'I;16L', 'I', 'F')


def _unit_gray(image: Image.Image) -> np.ndarray:
  """A 16-bit, 32-bit or float grayscale image in [0, 1]: the full range of its type."""
  values = np.asarray(image, np.float64)
  top = 1.0 if image.mode == 'F' and values.max() <= 1.0 else (
      65535.0 if image.mode.startswith('I;16') or values.max() > 255 else 255.0)
  return np.clip(values / top, 0.0, 1.0)


def _to_rgb(image: Image.Image) -> np.ndarray:
  if image.mode in _WIDE_MODES:
    gray = np.rint(_unit_gray(image) * 255.0).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)
  if image.mode in ('RGBA', 'LA', 'PA') or (image.mode == 'P' and 'transparency' in image.info):
    rgba = image.convert('RGBA')
    white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert('RGB'))
  return np.asarray(image.convert('RGB'))


@dataclasses.dataclass(frozen=True)
class SquareFrame:
  """How an original image became the S x S square: pad (left, top), then scale.

  `width` x `height` is the original image's size (0 when unknown). A crop (CUB) is a
  negative offset: the square then covers only part of the original.
  """
  left: int
  top: int
  scale: float  # S / max(width, height), or S / the crop's side
  width: int = 0
  height: int = 0

  def points(self, xy: np.ndarray) -> np.ndarray:
    """Original pixel (x, y) `[..., 2]` -> pixel of the S x S image (float32)."""
    shifted = np.asarray(xy, np.float64) + np.asarray([self.left, self.top])
    return ((shifted + 0.5) * self.scale - 0.5).astype(np.float32)

  def boxes(self, boxes: np.ndarray) -> np.ndarray:
    """Original boxes (x1, y1, x2, y2) `[..., 4]` -> boxes of the S x S image (float32)."""
    boxes = np.asarray(boxes, np.float64)
    return self.points(boxes.reshape(boxes.shape[:-1] + (2, 2))).reshape(boxes.shape)

  def to_original(self, xy: np.ndarray) -> np.ndarray:
    """Pixel (x, y) `[..., 2]` of the S x S image -> original pixel (float64); the inverse
    of `points`."""
    return (np.asarray(xy, np.float64) + 0.5) / self.scale - 0.5 - np.asarray([self.left, self.top])

  def inside(self, xy: np.ndarray) -> np.ndarray:
    """`[...]` bool: original pixels (x, y) `[..., 2]` within the original image."""
    xy = np.asarray(xy, np.float64)
    return ((xy[..., 0] >= -0.5) & (xy[..., 0] <= self.width - 0.5) & (xy[..., 1] >= -0.5) &
            (xy[..., 1] <= self.height - 0.5))

  def length(self, value: np.ndarray | float) -> np.ndarray:
    """A length in original pixels (a bbox side) -> pixels of the S frame."""
    return np.asarray(value, np.float64) * self.scale

  def area(self, size: int) -> np.ndarray:
    """`[S, S]` float32: 1 on the square's pixels that show the photo, 0 on its padding (all
    ones when the original size is unknown)."""
    if not (self.width and self.height):
      return np.ones((size, size), np.float32)
    ticks = np.arange(size, dtype=np.float64)
    xs, ys = np.meshgrid(ticks, ticks, indexing='xy')
    return self.inside(self.to_original(np.stack([xs, ys], -1))).astype(np.float32)

  def unsquare(self, image: np.ndarray) -> np.ndarray:
    """An S x S image (uint8 `[S, S, C]`) back at the original's size and place: resized to
    the padded side and the padding cut off; for a crop (CUB), pasted where the crop was in
    an original-sized canvas, zeros around it. Without a known size: the padded side."""
    side = int(round(image.shape[0] / self.scale))
    full = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))
    if not (self.width and self.height):
      return full
    canvas = np.zeros((self.height, self.width) + full.shape[2:], full.dtype)
    # Square pixel (u, v) shows original pixel (u - left, v - top).
    x0, y0 = max(-self.left, 0), max(-self.top, 0)
    x1, y1 = min(side - self.left, self.width), min(side - self.top, self.height)
    canvas[y0:y1, x0:x1] = full[y0 + self.top:y1 + self.top, x0 + self.left:x1 + self.left]
    return canvas


def square(image: np.ndarray, size: int) -> tuple[np.ndarray, SquareFrame]:
  """Edge-pads `[H, W, C]` uint8 to a centred square, resizes to S: (image, frame)."""
  height, width = image.shape[:2]
  side = max(height, width)
  left, top = (side - width) // 2, (side - height) // 2
  pad = ((top, side - height - top), (left, side - width - left)) + ((0, 0),) * (image.ndim - 2)
  padded = np.pad(image, pad, mode='edge')
  resized = np.asarray(Image.fromarray(padded).resize((size, size), Image.Resampling.BILINEAR))
  return resized, SquareFrame(left, top, size / side, width, height)


def load_square(path: str | pathlib.Path, size: int) -> np.ndarray:
  """An image file as `[S, S, 3]` float32 in [-1, 1] (edge-padded square, resized)."""
  image, _ = square(read_rgb(path), size)
  return to_unit_range(image)


def to_unit_range(image: np.ndarray) -> np.ndarray:
  """uint8 `[..., 3]` -> float32 in [-1, 1], the range every model input uses."""
  return (np.asarray(image, np.float32) / 127.5 - 1.0).astype(np.float32)


def read_mask(path: str | pathlib.Path) -> np.ndarray:
  """A mask file as `[H, W]` float32 soft foreground in [0, 1] (see the module docstring)."""
  path = pathlib.Path(path)
  try:
    with Image.open(path) as mask:
      mask.load()
      return _to_soft(mask)
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise UserError(f'cannot read mask {path}: {e}') from e


def _to_soft(mask: Image.Image) -> np.ndarray:
  if mask.mode in ('RGBA', 'LA', 'PA') or (mask.mode == 'P' and 'transparency' in mask.info):
    alpha = np.asarray(mask.convert('RGBA'))[..., 3]
    if alpha.min() < 255:
      return (alpha / 255.0).astype(np.float32)
  if mask.mode in _WIDE_MODES:
    return _unit_gray(mask).astype(np.float32)
  return (np.asarray(mask.convert('L')) / 255.0).astype(np.float32)


def list_images(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """Image files directly in `folder`, sorted by name."""
  folder = pathlib.Path(folder)
  return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def skipped_files(folder: str | pathlib.Path, expected: tuple[str, ...] = ()) -> list[str]:
  """Names of the files directly in `folder` that `list_images` leaves out (not hidden ones,
  nor the `expected` names: a keypoint file, say)."""
  folder = pathlib.Path(folder)
  return sorted(p.name
                for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES
                and not p.name.startswith('.') and p.name not in expected)


def unique_stems(files: list[pathlib.Path], where: str) -> None:
  """Raises `UserError` naming a file stem two of `files` share (images are named by stem)."""
  seen = {}
  for path in files:
    if path.stem in seen:
      raise UserError(f'{where}: {seen[path.stem].name} and {path.name} share the file stem '
                      f'{path.stem!r}, and images are named by stem; rename one')
    seen[path.stem] = path


def numbers(value, what: str) -> np.ndarray:
  """`value` (nested lists or an array of real numbers) as float64. Anything else (text, even
  '12'; true/false alone; null; rows of different lengths) raises `UserError` naming `what`
  and the first value that is not a number."""
  try:
    array = np.asarray(value)
  except ValueError:
    raise UserError(f'{what}: expected rows of numbers of one length, got {value!r:.80}') from None
  if array.dtype.kind not in 'iuf':
    bad = next((x for x in array.ravel()
                if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.number))),
               array.ravel()[0] if array.size else value)
    bad = bad.item() if isinstance(bad, np.generic) else bad
    raise UserError(f'{what}: expected numbers, got {bad!r} ({type(bad).__name__})')
  return array.astype(np.float64)
