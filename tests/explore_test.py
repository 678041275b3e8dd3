"""The explorer page: its encoding of the canonical maps, that it is self-contained, and, in a
real headless chromium, that a click puts markers where `asic_jax.load(...).transfer` puts the
point, hovering shows the canonical point, and the colour and mask overlays are the run's."""

import json
import os
import re

os.environ['HF_HUB_OFFLINE'] = '1'

import jax.numpy as jnp
import numpy as np
import pytest

import asic_jax
import browser as browser_lib
from asic_jax import explore, figures
from asic_jax.evaluation import transfer


@pytest.fixture(scope='module')
def run(tiny_run):
  return asic_jax.load(tiny_run)


@pytest.fixture(scope='module')
def chromium():
  """One headless chromium for the module; skips (saying why) where none can run."""
  try:
    browser = browser_lib.Chromium().__enter__()
  except browser_lib.BrowserError as e:
    pytest.skip(f'no headless chromium here: {str(e)[:300]}')
  yield browser
  browser.__exit__(None, None, None)


def _data(path) -> dict:
  """The JSON a page embeds."""
  text = path.read_text(encoding='utf-8')
  found = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', text,
                    re.S)
  return json.loads(found.group(1).replace('<\\/', '</'))


def _open(chromium, path, fragment: str = ''):
  page = chromium.open(path.as_uri() + (f'#{fragment}' if fragment else ''))
  assert page.wait_for('document.body.dataset.ready') == '1', page.evaluate(
      'document.getElementById("status").textContent')
  return page


def _screen(page, index: int, x: float, y: float) -> tuple[float, float]:
  """Viewport CSS pixels of photo `index`'s pixel (x, y), from its image's box alone (pixel
  centres corner-aligned: pixel i spans [i - 0.5, i + 0.5])."""
  card = f'document.querySelector(\'.card[data-index="{index}"]\')'
  page.evaluate(f'{card}.scrollIntoView({{block: "center"}})')
  box = page.evaluate(f'(() => {{ const r = {card}.querySelector("img").getBoundingClientRect();'
                      ' return [r.left, r.top, r.width, r.height]; })()')
  size = page.evaluate(f'(() => {{ const v = {card}.querySelector("svg").viewBox.baseVal;'
                       ' return [v.width, v.height]; })()')
  return box[0] + (x + 0.5) * box[2] / size[0], box[1] + (y + 0.5) * box[3] / size[1]


def _markers(page) -> dict[str, list[dict]]:
  """Every card's transfer markers: {name: [{x, y, screen: [cx, cy]}]}, in point order."""
  return page.evaluate('''(() => {
    const out = {};
    for (const card of document.querySelectorAll('.card')) {
      out[card.dataset.name] = [...card.querySelectorAll('circle.transfer')].map((c) => {
        const r = c.getBoundingClientRect();
        return {x: +c.dataset.x, y: +c.dataset.y, point: +c.dataset.point,
                screen: [r.left + r.width / 2, r.top + r.height / 2]};
      });
    }
    return out;
  })()''')


def _same_or_tied(alignment, data, source: int, point, target: int, got) -> bool:
  """Whether the page's answer `got` (pixels of photo `target`) is the API's, or else a pixel
  as near the canonical point as the API's up to what the page's 16-bit maps can tell apart (a
  fold of the map, where two pixels are all but equally near)."""
  want = alignment.transfer([point], source, target)[0]
  if np.allclose(got, want, atol=1e-6):
    return True
  flows = alignment.exported()['canonical']
  square = alignment.frame(source).points(np.asarray([point]))
  canonical = np.asarray(transfer.canonical_points(jnp.asarray(flows[source]),
                                                   jnp.asarray(square)))[0]
  pixels = [
      np.rint(alignment.frame(target).points(np.asarray([p]))[0]).astype(int) for p in (got, want)
  ]
  near = [np.linalg.norm(flows[target][y, x] - canonical) for x, y in pixels]
  step = max((h - l) / 65535 for l, h in zip(data['maps']['low'], data['maps']['high']))
  return abs(near[0] - near[1]) <= 2 * step  # each value within step / 2 of the API's


def test_encoding_round_trips_within_the_quantisation_step():
  rng = np.random.default_rng(0)
  grid = np.stack(np.meshgrid(np.linspace(-1, 1, 24), np.linspace(-1, 1, 24), indexing='xy'), -1)
  maps = (grid[None] + 0.3 * rng.normal(size=(3, 24, 24, 2))).astype(np.float32)
  maps[2] = 0.5  # a constant map: an empty range
  masks = rng.uniform(size=(3, 24, 24)).astype(np.float32)
  masks[1, 0, :3] = [0.1, np.nextafter(np.float32(0.1), np.float32(0)), 0.0999999]
  encoded = explore.encode(maps, masks)
  canonical, shown, allowed = explore.decode(encoded, 3, 24)
  step = (np.asarray(encoded['high']) - encoded['low']) / 65535
  for n in range(3):
    assert np.abs(canonical[n] - maps[n]).max() <= step[n] / 2 + 1e-6
  np.testing.assert_array_equal(allowed, masks >= transfer.MASK_THRESHOLD)  # exact
  np.testing.assert_array_equal(shown, np.rint(masks * 255))


def test_the_run_writes_a_self_contained_explorer_linked_from_its_report(tiny_run):
  page = tiny_run / 'report' / 'explore.html'
  text = page.read_text(encoding='utf-8')
  assert 'href="explore.html"' in (tiny_run / 'report' / 'index.html').read_text()
  # Nothing is fetched: no external script, style sheet, font, image or request.
  assert not re.search(r'<(link|iframe|object|embed)\b', text)
  assert re.findall(r'<script\b[^>]*\bsrc=', text) == []
  assert re.findall(r'\b(?:src|href)="([^"]*)"', text) == ['index.html']  # the report
  assert not re.search(r'\b(fetch|XMLHttpRequest|WebSocket|import\()', text)
  data = _data(page)
  assert [im['name'] for im in data['images']] == [f'synthetic_{i:03d}' for i in range(6)]
  assert all(im['photo'].startswith('data:image/jpeg;base64,') for im in data['images'])
  assert len(data['images'][0]['keypoints']) == 8


def test_clicking_a_keypoint_puts_markers_where_the_api_transfers_it(run, tiny_run, chromium):
  """Every visible keypoint of every photo, clicked where it is on screen: the page snaps to
  it and marks, on every other photo, the pixel `asic_jax.load(...).transfer` gives, drawn at
  that pixel on screen."""
  path = tiny_run / 'report' / 'explore.html'
  data = _data(path)
  page = _open(chromium, path)
  exact = total = 0
  for source, image in enumerate(data['images']):
    for k, point in enumerate(image['keypoints']):
      if point is None:
        continue
      page.click(*_screen(page, source, *point))
      assert page.evaluate('explorer.source.points[0]') == dict(x=point[0], y=point[1], keypoint=k)
      markers = _markers(page)
      want = run.transfer([point], source, 'all')
      for name, got in markers.items():
        if name == image['name']:
          assert got == []
          continue
        assert len(got) == 1
        target = run.index(name)
        xy = np.asarray([got[0]['x'], got[0]['y']])
        total += 1
        exact += np.allclose(xy, want[name][0], atol=1e-6)
        assert _same_or_tied(run, data, source, point, target, xy), (source, k, name)
        # The marker is drawn where that pixel is on screen (within half a screen pixel).
        np.testing.assert_allclose(got[0]['screen'], _screen(page, target, *xy), atol=0.5)
      page.evaluate(f'document.querySelector(\'.card[data-index="{source}"]\')'
                    '.scrollIntoView({block: "center"})')
  assert total == 6 * 8 * 5 and exact == total  # every one the API's own pixel, here
  # Every keypoint of a photo at once, from the address: each target marks all 8.
  page = _open(chromium, path, 'src=synthetic_002&all=1')
  assert [p['keypoint'] for p in page.evaluate('explorer.source.points')] == list(range(8))
  assert {len(m) for name, m in _markers(page).items() if name != 'synthetic_002'} == {8}


def test_a_click_anywhere_and_the_hovered_canonical_point(run, tiny_run, chromium):
  path = tiny_run / 'report' / 'explore.html'
  data = _data(path)
  page = _open(chromium, path)
  page.evaluate('document.getElementById("show-keypoints").click()')  # no snapping
  x, y = _screen(page, 3, 10.3, 20.6)
  page.mouse('mouseMoved', x, y)
  hovered = page.evaluate('explorer.hovered')
  assert hovered['name'] == 'synthetic_003' and abs(hovered['x'] - 10.3) < 0.2
  flows = run.exported()['canonical']
  square = run.frame(3).points(np.asarray([[hovered['x'], hovered['y']]]))
  want = transfer.canonical_points(jnp.asarray(flows[3]), jnp.asarray(square))[0]
  np.testing.assert_allclose(hovered['canonical'], want, atol=1e-4)  # 16-bit maps
  assert 'canonical (' in page.evaluate('document.getElementById("hover").textContent')
  page.click(x, y)
  source = page.evaluate('explorer.source.points[0]')
  assert source['keypoint'] is None and abs(source['x'] - 10.3) < 0.2
  point = [source['x'], source['y']]
  for name, got in _markers(page).items():
    if name != 'synthetic_003':
      assert _same_or_tied(run, data, 3, point, run.index(name), [got[0]['x'], got[0]['y']])
  # The address keeps the click: opening it again shows the same source and markers.
  address = page.evaluate('location.href')
  assert '#src=synthetic_003&' in address
  again = chromium.open(address)
  again.wait_for('document.body.dataset.ready')
  assert again.evaluate('explorer.source.points[0]') == source
  assert _markers(again) == _markers(page)


def test_colour_and_mask_overlays_are_the_runs(run, tiny_run, chromium):
  page = _open(chromium, tiny_run / 'report' / 'explore.html')
  page.click(*_screen(page, 4, 5.0, 6.0))
  requested = page.requests()  # the page itself and its embedded photos, nothing else
  assert requested[0] == (tiny_run / 'report' / 'explore.html').as_uri()
  assert len(requested) > 1 and all(url.startswith('data:image/jpeg') for url in requested[1:])
  display = 'getComputedStyle(document.querySelector(\'.card[data-index="{}"] .{}\')).display'
  assert page.evaluate(display.format(0, 'colour')) == 'none'
  page.evaluate('document.getElementById("show-colours").click()')
  assert page.evaluate(display.format(0, 'colour')) == 'block'
  pixels = np.asarray(
      page.evaluate('Array.from(document.querySelector(\'.card[data-index="2"] .colour\')'
                    '.getContext("2d").getImageData(0, 0, 32, 32).data)'),
      np.float64).reshape(32, 32, 4)
  arrays = run.exported()
  want = np.asarray(figures.colour_wheel(jnp.asarray(arrays['canonical'][2]))) * 255
  opaque = pixels[..., 3] == 255
  assert opaque.sum() > 100
  np.testing.assert_allclose(pixels[opaque][:, :3], want[opaque], atol=1.01)
  np.testing.assert_allclose(pixels[..., 3], np.rint(arrays['masks'][2] * 255), atol=0)
  # One photo's mask, then all of them.
  page.evaluate('document.querySelector(\'.card[data-index="1"] .mask-toggle\').click()')
  shown = [page.evaluate(display.format(i, 'mask')) for i in range(6)]
  assert shown == ['none', 'block'] + ['none'] * 4
  page.evaluate('document.getElementById("show-masks").click()')
  assert {page.evaluate(display.format(i, 'mask')) for i in range(6)} == {'block'}


def test_mapped_photos_of_other_shapes_transfer_as_the_api(run, tmp_path, chromium):
  """Photos mapped into the run (non-square: padded, scaled frames) in the page `mode=map`
  writes: clicks on them and on the collection land where `Alignment.transfer` says."""
  rng = np.random.default_rng(2)
  photos = [
      rng.integers(0, 255, (30, 40, 3), np.uint8),
      rng.integers(0, 255, (52, 26, 3), np.uint8)
  ]
  mapped = run.map(photos, names=['wide', 'tall'])
  path = explore.write_explorer(mapped,
                                tmp_path / 'explore.html',
                                keypoints=run.collection.keypoints,
                                visibility=run.collection.visibility,
                                mapped_from=len(run))
  data = _data(path)
  assert [im['mapped'] for im in data['images']] == [False] * 6 + [True, True]
  assert (data['images'][7]['width'], data['images'][7]['height']) == (26, 52)
  page = _open(chromium, path)
  for source, point in ((0, data['images'][0]['keypoints'][2]), (6, [31.0, 4.0]), (7, [3.0, 49.0])):
    page.click(*_screen(page, source, *point))
    clicked = page.evaluate('explorer.source.points[0]')
    point = [clicked['x'], clicked['y']]
    for name, got in _markers(page).items():
      if name != mapped.names[source]:
        assert _same_or_tied(mapped, data, source, point, mapped.index(name),
                             [got[0]['x'], got[0]['y']]), (source, name)


def test_a_run_with_soft_transfers_shows_soft_transfers(run, tmp_path, chromium):
  """`eval.transfer=soft`: the page's window soft-argmax is `transfer.soft_pixels`'."""
  config = run.config.copy_and_resolve_references()
  config.eval.transfer, config.eval.soft_window, config.eval.soft_temperature = 'soft', 2, 1.5
  soft = asic_jax.api.Alignment(config, run.collection, run._state, run.step, run._flows)  # pylint: disable=protected-access
  path = explore.write_explorer(soft, tmp_path / 'explore.html')
  page = _open(chromium, path)
  point = _data(path)['images'][1]['keypoints'][4]
  page.click(*_screen(page, 1, *point))
  assert page.evaluate('explorer.source.points[0].keypoint') == 4
  want = soft.transfer([point], 1, 'all')
  got = {name: [m[0]['x'], m[0]['y']] for name, m in _markers(page).items() if m}
  assert sorted(got) == sorted(want)
  assert any(np.abs(np.asarray(v) - np.rint(v)).max() > 0.01 for v in got.values())  # sub-pixel
  for name, xy in got.items():
    np.testing.assert_allclose(xy, want[name][0], atol=2e-3)  # 16-bit maps, float32 there
