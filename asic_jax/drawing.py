"""Host-side drawing for the figures and the report: tiling, markers, lines and plots.

Images here are numpy `uint8 [H, W, 3]`; points are (x, y) pixels of the image they
are drawn on (corner-aligned frame of `asic_jax.ops.sampling`). Markers and lines are
drawn with PIL's `ImageDraw`; curves with matplotlib's Agg canvas (no display, no
pyplot state).
"""

import pathlib
from typing import Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np
from PIL import Image, ImageDraw

from asic_jax import safe_io

# Keypoint and part colours (matplotlib's tab20, cycled).
PALETTE = np.round(np.asarray(matplotlib.colormaps['tab20'].colors) * 255).astype(np.uint8)
CORRECT = (0, 200, 0)
WRONG = (230, 0, 0)
_PAD = 2  # pixels of white between tiles
# metrics.jsonl keys in the order their panels are drawn; other keys follow by name.
_CURVE_ORDER = ('total', 'kp', 'equi', 'tv', 'recon', 'mask', 'parts', 'lr', 'grad_norm')


def to_uint8(image: np.ndarray, low: float = 0.0) -> np.ndarray:
  """`[H, W, C]` floats in [low, 1] (low = -1 for the collection's images) to uint8."""
  unit = (np.asarray(image, np.float32) - low) / (1.0 - low)
  return np.round(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)


def grey(values: np.ndarray) -> np.ndarray:
  """`[H, W]` values in [0, 1] as an RGB uint8 image."""
  return np.repeat(to_uint8(np.asarray(values)[..., None]), 3, axis=-1)


def colour_labels(labels: np.ndarray, num_labels: int) -> np.ndarray:
  """`[H, W]` int labels to RGB: label i gets `PALETTE[i]`, label `num_labels` (background)
  black."""
  labels = np.asarray(labels)
  out = PALETTE[labels % len(PALETTE)]
  out[labels >= num_labels] = 0
  return out


def tile(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
  """Tiles of `[h, w, 3]` uint8 in rows (left to right, top to bottom), on white."""
  row_images = []
  for row in rows:
    height = max(image.shape[0] for image in row)
    width = sum(image.shape[1] for image in row) + _PAD * (len(row) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for image in row:
      canvas[:image.shape[0], x:x + image.shape[1]] = image
      x += image.shape[1] + _PAD
    row_images.append(canvas)
  width = max(image.shape[1] for image in row_images)
  height = sum(image.shape[0] for image in row_images) + _PAD * (len(row_images) - 1)
  out = np.full((height, width, 3), 255, np.uint8)
  y = 0
  for image in row_images:
    out[y:y + image.shape[0], :image.shape[1]] = image
    y += image.shape[0] + _PAD
  return out


def _rgb(colour) -> tuple[int, ...]:
  return tuple(int(c) for c in colour)


def _radius(image: np.ndarray) -> float:
  return max(2.0, image.shape[0] / 48)


def draw_points(image: np.ndarray,
                points: np.ndarray,
                fills: Sequence[tuple[int, ...]],
                outlines: Sequence[tuple[int, ...]] | None = None,
                hollow: bool = False) -> np.ndarray:
  """Discs (or rings when `hollow`) at `points [K, 2]` in `fills`, with `outlines`
  (white when None)."""
  canvas = Image.fromarray(image)
  draw = ImageDraw.Draw(canvas)
  r = _radius(image)
  width = max(1, round(r / 2))
  for k, (x, y) in enumerate(np.asarray(points, np.float32)):
    box = (x - r, y - r, x + r, y + r)
    if hollow:
      draw.ellipse(box, outline=_rgb(fills[k]), width=width)
    else:
      outline = (255, 255, 255) if outlines is None else _rgb(outlines[k])
      draw.ellipse(box, fill=_rgb(fills[k]), outline=outline, width=width)
  return np.asarray(canvas)


def draw_lines(image: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               colours: Sequence[tuple[int, ...]]) -> np.ndarray:
  """Segments from `starts [K, 2]` to `ends [K, 2]` in `colours`."""
  canvas = Image.fromarray(image)
  draw = ImageDraw.Draw(canvas)
  width = max(1, round(_radius(image) / 3))
  for a, b, colour in zip(np.asarray(starts, np.float32), np.asarray(ends, np.float32), colours):
    draw.line((float(a[0]), float(a[1]), float(b[0]), float(b[1])), fill=_rgb(colour), width=width)
  return np.asarray(canvas)


def side_by_side_matches(left: np.ndarray, right: np.ndarray, points_left: np.ndarray,
                         points_right: np.ndarray, colours: Sequence[tuple[int,
                                                                           ...]]) -> np.ndarray:
  """Two images side by side, with a line and end markers for each match."""
  shift = np.asarray([left.shape[1] + _PAD, 0], np.float32)
  both = tile([[left, right]])
  both = draw_lines(both, points_left, np.asarray(points_right) + shift, colours)
  both = draw_points(both, points_left, colours)
  return draw_points(both, np.asarray(points_right) + shift, colours)


def _figure_array(fig: Figure) -> np.ndarray:
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


_STYLES = ('-', '--', ':', '-.')


def method_label(results: dict) -> str:
  """'ASIC', 'DINO+NN', 'VGG-16+MLS', ... from a results file's `method`."""
  method = results.get('method', 'asic')
  if method == 'asic':
    return 'ASIC'
  backbone, _, kind = method.partition('_')
  names = {'vgg16': 'VGG-16', 'dinov2': 'DINOv2'}
  return f'{names.get(backbone, backbone.upper())}+{kind.upper()}'


def pck_plot(results: dict | None, baselines: Sequence[dict] = ()) -> np.ndarray | None:
  """PCK@alpha (over image pairs) and k-CyPCK curves of ASIC (solid) and each baseline (dashed,
  dotted, ...), in %.

  Args:
    results: the contents of `eval/results.json`, or None.
    baselines: the contents of `eval/baseline_*.json` files (every curve `{'0.10': value, ...}`,
      read as written).

  Returns:
    The plot as `[H, W, 3]` uint8, or None when none holds a curve.
  """
  fig = Figure(figsize=(6.0, 3.9), dpi=100)
  ax = fig.add_subplot()
  drawn = 0
  sources = [results] + list(baselines)
  for source, style in zip(sources, _STYLES * len(sources)):
    if not source:
      continue
    method = method_label(source)
    curves = [('PCK', source.get('pck'))]
    curves += [(c['metric'], c['pck']) for c in source.get('k_cycle', {}).values()]
    for index, (label, curve) in enumerate(curves):
      if curve:
        alphas = sorted(curve, key=float, reverse=True)  # 0.10 ... 0.01, as evaluated
        ax.plot([float(a) for a in alphas], [100 * curve[a] for a in alphas],
                style,
                marker='o',
                markersize=3,
                color=f'C{index}',
                label=f'{method}: {label}')
        drawn += 1
  if not drawn:
    return None
  ax.set_xlabel('alpha (threshold: alpha x the PCK length L)')
  ax.set_ylabel('correct keypoints (%)')
  ax.set_ylim(0, 100)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return _figure_array(fig)


def loss_plot(records: Sequence[dict]) -> np.ndarray | None:
  """Every logged quantity of `metrics.jsonl` against the step, one small panel each.

  Returns:
    The plot as `[H, W, 3]` uint8, or None without records.
  """
  present = set(records[0]) - {'step', 'steps_per_s'} if records else set()
  keys = [k for k in _CURVE_ORDER if k in present] + sorted(present - set(_CURVE_ORDER))
  if not keys:
    return None
  columns = min(4, len(keys))
  rows = -(-len(keys) // columns)
  fig = Figure(figsize=(2.6 * columns, 2.0 * rows), dpi=100)
  steps = [r['step'] for r in records]
  for index, key in enumerate(keys):
    ax = fig.add_subplot(rows, columns, index + 1)
    ax.plot(steps, [r.get(key, np.nan) for r in records], linewidth=1.2)
    ax.set_title(key, fontsize=9)
    ax.set_xlabel('step', fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return _figure_array(fig)


def write_png(path: pathlib.Path, image: np.ndarray) -> None:
  """`image` (`[H, W, 3|4]` uint8) as an optimised PNG, written atomically."""
  picture = Image.fromarray(np.asarray(image, np.uint8))
  safe_io.write_atomic(path, lambda f: picture.save(f, format='PNG', optimize=True))
