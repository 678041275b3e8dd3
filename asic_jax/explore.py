"""The explorer: one self-contained, interactive page of an alignment (`report/explore.html`).

Every photo of the collection (and photos mapped into it, `mode=map`) at a readable size.
Click a point on any photo and its transfer appears on every other photo; hover and the
canonical point shows, on the photo's status line and on the canonical square; toggles show
the canonical colour map over the photos and each photo's mask; ground-truth keypoints, when
the collection has them, are drawn and snap clicks, and a button carries all of a photo's
keypoints at once (each target's own ground truth beside its prediction).

The transfer is computed in the page's JavaScript from the exported canonical maps
(`Alignment.exported()`) exactly as `mode=eval` and `asic_jax.load(...).transfer` compute
it: the source point goes into its S x S square through the photo's frame, its canonical point
is the square's map sampled bilinearly (border), the answer is the target square's pixel whose
canonical coordinate is nearest (among pixels with mask >= 0.1; the first in row-major order
wins a tie; `soft` as `transfer.soft_pixels` when the run's `eval.transfer` is 'soft'), and it
goes back to the target photo's pixels through its frame. `decode` below is the page's decoder
in numpy; the tests click the page in a real browser and compare.

What makes it small and self-contained: the page has no external script, style sheet, font or
request of any kind (it opens from disk, `file://`). The canonical maps are kept at the run's
own resolution S (the transfer searches every target pixel, as the API does), quantised to 16
bits over each image's range (a step of about 6e-5 canonical units, under 1/100 of a pixel at
S = 256), predicted from their neighbours and deflated (`encode`), then base64-encoded; the
masks are 8 bits, plus one bit per pixel (mask >= 0.1) for the transfer. The browser inflates
them with its own `DecompressionStream`. Photos are JPEGs at the resolution the run holds them
(their square's), never larger than the original. The quantisation moves a transfer only where
two target pixels are all but equally near the canonical point (a fold of the map): on the
PF-WILLOW duck run (128 px, 10 photos) 99.8 % of 3,600 random transfers and all 900 keypoint
transfers land on the API's pixel (`scripts/measure_explorer.py`).

Frames (as `asic_jax.api`): points are (x, y) in each original photo's pixels, corner-aligned
pixel centres; a photo's pixel p lands at (p + (left, top) + 0.5) scale - 0.5 in its square.
"""

import base64
import html
import io
import json
import pathlib
import zlib

import numpy as np
from PIL import Image

from asic_jax import api, drawing, safe_io
from asic_jax.evaluation import transfer

_SCRIPT = pathlib.Path(__file__).with_name('explore.js')
_LEVELS = 65535  # 16-bit quantisation of the canonical maps
_JPEG_QUALITY = 90


def _deflate(array: np.ndarray) -> str:
  """Little-endian bytes of `array`, deflated (zlib format) and base64-encoded."""
  data = np.ascontiguousarray(array, array.dtype.newbyteorder('<')).tobytes()
  return base64.b64encode(zlib.compress(data, 9)).decode('ascii')


def _inflate(text: str, dtype) -> np.ndarray:
  return np.frombuffer(zlib.decompress(base64.b64decode(text)), np.dtype(dtype).newbyteorder('<'))


def encode(canonical: np.ndarray, masks: np.ndarray) -> dict:
  """The page's form of the canonical maps `[N, S, S, 2]` and masks `[N, S, S]` in [0, 1].

  Each image's map is quantised to 16-bit levels over its own range, `round((c - low) /
  (high - low) * 65535)`; each `[S, S]` plane of levels (x, then y) is replaced by its 2-D
  difference `q - left - up + up_left` (zero outside), modulo 2^16 and zigzag-coded (0, -1, 1,
  -2, ... -> 0, 1, 2, 3, ...), which keeps a smooth map's values near zero; the low bytes of all
  planes, then the high bytes, are deflated. The masks are `round(255 m)` and, kept exact,
  `m >= 0.1` (the transfer's test) as 0 / 1 bytes.

  Returns:
    `{'low': [N], 'high': [N], 'maps', 'masks', 'allowed'}`, arrays deflated (zlib format)
    and base64-encoded.
  """
  canonical = np.asarray(canonical, np.float64)
  low = canonical.min(axis=(1, 2, 3))
  high = np.maximum(canonical.max(axis=(1, 2, 3)), low + 1e-6)
  span = (high - low)[:, None, None, None]
  levels = np.rint((canonical - low[:, None, None, None]) / span * _LEVELS).astype(np.int64)
  planes = levels.transpose(0, 3, 1, 2)  # [N, 2, S, S]
  padded = np.pad(planes, ((0, 0), (0, 0), (1, 0), (1, 0)))
  residual = planes - padded[..., 1:, :-1] - padded[..., :-1, 1:] + padded[..., :-1, :-1]
  signed = (residual + 32768) % 65536 - 32768
  zigzag = np.where(signed >= 0, 2 * signed, -2 * signed - 1)
  masks = np.asarray(masks, np.float64)
  return dict(low=low.tolist(),
              high=high.tolist(),
              maps=_deflate(np.stack([zigzag & 255, zigzag >> 8]).astype(np.uint8)),
              masks=_deflate(np.rint(np.clip(masks, 0, 1) * 255).astype(np.uint8)),
              allowed=_deflate((masks >= transfer.MASK_THRESHOLD).astype(np.uint8)))


def decode(encoded: dict, count: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """What the page decodes from `encode`'s output: the canonical maps `[N, S, S, 2]` as the
  page holds them (float32, as its Float32Array), the masks `[N, S, S]` uint8 and the
  transfer's allowed pixels `[N, S, S]` bool."""
  data = _inflate(encoded['maps'], np.uint8).reshape(2, count, 2, size, size).astype(np.int64)
  zigzag = data[0] | (data[1] << 8)
  residual = (zigzag >> 1) ^ -(zigzag & 1)
  levels = np.cumsum(np.cumsum(residual, axis=-1), axis=-2) % (_LEVELS + 1)  # undoes the 2-D
  low, high = (np.asarray(encoded[k], np.float64)[:, None, None, None] for k in ('low', 'high'))
  canonical = (low + levels * ((high - low) / _LEVELS)).astype(np.float32).transpose(0, 2, 3, 1)
  masks = _inflate(encoded['masks'], np.uint8).reshape(count, size, size)
  allowed = _inflate(encoded['allowed'], np.uint8).reshape(count, size, size).astype(bool)
  return canonical, masks, allowed


def _jpeg(photo: np.ndarray, width: int, height: int) -> str:
  """`photo [H, W, 3]` uint8 as a JPEG data URI at `width x height`."""
  image = Image.fromarray(photo)
  if image.size != (width, height):
    image = image.resize((width, height), Image.Resampling.LANCZOS)
  buffer = io.BytesIO()
  image.save(buffer, 'JPEG', quality=_JPEG_QUALITY)
  return 'data:image/jpeg;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def page_data(alignment,
              *,
              keypoints=None,
              visibility=None,
              mapped_from: int | None = None,
              title: str = '') -> dict:
  """Everything the page embeds, as JSON-ready values.

  Args:
    alignment: an `asic_jax.api.Alignment`.
    keypoints, visibility: `[M, K, 2]` S-frame keypoints of the first M images and `[M, K]`
      their visibility (default: the alignment's collection's own, when it has them).
    mapped_from: the index of the first photo mapped into the run (`mode=map`), or None.
    title: the page's heading.
  """
  collection = alignment.collection
  if keypoints is None and collection.keypoints is not None:
    keypoints, visibility = collection.keypoints, collection.visibility
  arrays = alignment.exported()
  size = int(arrays['size'])
  images = []
  for i, name in enumerate(alignment.names):
    left, top, scale, width, height = (float(v) for v in arrays['frames'][i])
    width, height = int(width), int(height)
    shown = [max(1, min(side, round(side * scale))) for side in (width, height)]
    entry = dict(name=name,
                 width=width,
                 height=height,
                 frame=dict(left=left, top=top, scale=scale),
                 photo=_jpeg(alignment.photo(i), *shown),
                 mapped=mapped_from is not None and i >= mapped_from)
    if keypoints is not None and i < len(keypoints):
      frame = alignment.frame(i)
      points = frame.to_original(keypoints[i])
      entry['keypoints'] = [p.tolist() if seen else None for p, seen in zip(points, visibility[i])]
    images.append(entry)
  e = alignment.config.eval
  # 'refine' needs the backbone's descriptors, which the page does not hold: it shows the
  # canonical transfer that refine starts from, and says so.
  method = str(e.transfer) if e.transfer in ('nearest', 'soft') else 'nearest'
  return dict(title=title,
              step=int(arrays['step']),
              size=size,
              refined=e.transfer == 'refine',
              transfer=dict(method=method,
                            window=int(e.soft_window),
                            temperature=float(e.soft_temperature)),
              palette=drawing.PALETTE.tolist(),
              images=images,
              maps=encode(arrays['canonical'], arrays['masks']))


def render(data: dict, *, back: str | None = None) -> str:
  """The page: HTML, style, the data as JSON and the script, in one string."""
  title = html.escape(data['title'] or 'ASIC explorer')
  link = f'<a href="{html.escape(back, quote=True)}">report</a> · ' if back else ''
  payload = json.dumps(data, separators=(',', ':')).replace('</', '<\\/')
  return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          f'<meta name="viewport" content="width=device-width, initial-scale=1">'
          f'<title>{title}</title><style>{_STYLE}</style></head><body>\n'
          f'<header><h1>{title}</h1><p class="help">{link}Click a point on any photo: its '
          f'transfer appears on every other photo (the same transfer as <code>mode=eval</code> '
          f'and <code>asic_jax.load(...).transfer</code>, step {data["step"]}). Hover to see the '
          f'canonical point. Clicks near a ground-truth keypoint take the keypoint.' +
          (' This run refines its transfers with the backbone\'s descriptors '
           "(<code>eval.transfer='refine'</code>); the page shows the canonical transfer "
           'they start from (<code>method=\'nearest\'</code>).' if data.get('refined') else '') +
          '</p>'
          f'{_CONTROLS}</header>\n<div id="photos"></div>\n'
          f'<script type="application/json" id="explorer-data">{payload}</script>\n'
          f'<script>{_SCRIPT.read_text(encoding="utf-8")}</script>\n</body></html>\n')


def write_explorer(alignment,
                   path: str | pathlib.Path,
                   *,
                   back: str | None = None,
                   **kwargs) -> pathlib.Path:
  """Writes the explorer of `alignment` to `path` (atomically); `back`: a relative link to the
  run's report; other arguments as `page_data`."""
  path = pathlib.Path(path)
  safe_io.write_text_atomic(path, render(page_data(alignment, **kwargs), back=back))
  return path


def write_for_run(config, collection, state, step: int, flows,
                  workdir: str | pathlib.Path) -> pathlib.Path:
  """`WORKDIR/report/explore.html` of a trained state and its collection's flows `[N, S, S,
  2]` (what training's end and `mode=visualize` have at hand)."""
  workdir = pathlib.Path(workdir)
  alignment = api.Alignment(config, collection, state, step, flows)
  return write_explorer(alignment,
                        workdir / 'report' / 'explore.html',
                        back='index.html',
                        title=f'ASIC run {workdir.absolute().name}: explorer')


_CONTROLS = """<div id="controls">
<label><input type="checkbox" id="show-colours"> canonical colours</label>
<label><input type="checkbox" id="show-masks"> masks</label>
<label><input type="checkbox" id="show-keypoints" checked> keypoints</label>
<button id="all-keypoints" disabled>carry every keypoint of the clicked photo</button>
<button id="clear">clear</button>
<label>size <input type="range" id="photo-size" min="96" max="512" step="16" value="224"></label>
<canvas id="canonical" width="128" height="128"
  title="canonical space: the square [-1, 1]² outlined, hovered and clicked points marked"></canvas>
<div id="status">Loading…</div>
</div>"""

_STYLE = """
body { font-family: sans-serif; margin: 0; color: #222; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ccc;
  padding: 0.3em 1em; z-index: 2; min-height: 140px; box-sizing: border-box; }
h1 { font-size: 1.2em; margin: 0.2em 0; }
.help { font-size: 0.85em; margin: 0.2em 0; color: #444; max-width: 60em; }
#controls { display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; align-items: center;
  font-size: 0.9em; padding-right: 150px; }
#canonical { position: absolute; right: 1em; top: 0.5em; border: 1px solid #999;
  width: 128px; height: 128px; background: #fff; }
#status, #hover { flex-basis: 100%; font-family: monospace; font-size: 0.85em;
  overflow: hidden; }
#status { height: 2.6em; }  /* fixed: a longer line must not move the photos under the mouse */
#hover { height: 1.3em; white-space: nowrap; }
#photos { display: flex; flex-wrap: wrap; gap: 12px; padding: 12px; }
.card { font-size: 0.8em; }
.card .name { display: flex; justify-content: space-between; gap: 1em; margin-bottom: 2px; }
.card.source .view { outline: 3px solid #1565c0; }
.card .mapped { color: #b45f06; }
.view { position: relative; overflow: hidden; background: #eee; cursor: crosshair; }
.view img, .view canvas, .view svg { position: absolute; left: 0; top: 0; }
.view img { width: 100%; height: 100%; }
.view canvas { pointer-events: none; }
.view svg { width: 100%; height: 100%; overflow: visible; pointer-events: none; }
.view .colour, .view .mask { display: none; }
.show-colours .view .colour, .view.show-mask .mask { display: block; }
.hide-keypoints .truth { display: none; }
"""
