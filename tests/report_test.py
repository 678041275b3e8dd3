"""The HTML report: every link resolves inside the workdir, it prints the numbers of
`eval/*.json`, and it builds for runs without keypoints or figures, or with damaged files."""

import html
import html.parser
import json
import logging
import pathlib
import shutil
import urllib.parse

import numpy as np

from asic_jax import figures, report


class _Page(html.parser.HTMLParser):
  """Collects every link and image source, and the cells of each table."""

  def __init__(self):
    super().__init__()
    self.links, self.tables, self._cell = [], [], None

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    for key in ('href', 'src'):
      if key in attrs:
        self.links.append(attrs[key])
    if tag == 'table':
      self.tables.append([])
    if tag == 'td':
      self._cell = ''

  def handle_data(self, data):
    if self._cell is not None:
      self._cell += data

  def handle_endtag(self, tag):
    if tag == 'td':
      self.tables[-1].append(self._cell)
      self._cell = None


def _parse(index: pathlib.Path) -> _Page:
  page = _Page()
  page.feed(index.read_text(encoding='utf-8'))
  return page


def _assert_links_resolve(index: pathlib.Path, page: _Page) -> None:
  workdir = index.parent.parent.resolve()
  for link in page.links:
    parsed = urllib.parse.urlsplit(link)
    assert not parsed.scheme and not parsed.netloc and not link.startswith('/'), link
    target = (index.parent / urllib.parse.unquote(parsed.path)).resolve()
    assert target.is_file(), link
    assert workdir in target.parents, link  # nothing outside the workdir


def _pck_values(results: dict) -> list[float]:
  curves = [results.get('pck'), results.get('pck_per_pair')]
  curves += [c['pck'] for c in results['k_cycle'].values()]
  return [value for curve in curves if curve for value in curve.values()]


def test_report_links_resolve_and_hold_the_printed_numbers(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  results = json.loads((workdir / 'eval' / 'results.json').read_text())
  baseline = dict(results, method='vgg16_mls', baseline=dict(layer='relu4_3', method='mls'))
  baseline['pck'] = {a: v / 2 for a, v in results['pck'].items()}
  (workdir / 'eval' / 'baseline_vgg16_mls.json').write_text(json.dumps(baseline))
  image = np.zeros((4, 6, 3), np.uint8)
  figures.save({
      'colour_maps': (image, 'maps'),
      'my figure': (image, 'a <b> & c')
  }, workdir / 'figures')
  (workdir / 'edits').mkdir()
  figures.save({'synthetic_000': (image, '')}, workdir / 'edits')

  index = report.write_report(workdir)
  assert index == workdir / 'report' / 'index.html'
  page = _parse(index)
  _assert_links_resolve(index, page)
  sources = set(page.links)
  for expected in ('../figures/colour_maps.png', '../figures/my%20figure.png',
                   '../edits/synthetic_000.png', 'pck_curves.png', 'loss_curves.png'):
    assert expected in sources, expected
  text = index.read_text(encoding='utf-8')
  assert 'a &lt;b&gt; &amp; c' in text and '&quot;num_steps&quot;: 20' in text
  asic_cells, baseline_cells = page.tables
  for value in _pck_values(results):
    assert report.percent(value) in asic_cells
  for value in _pck_values(baseline):
    assert report.percent(value) in baseline_cells
  assert html.escape(results['protocol']) in text
  assert 'VGG-16+MLS baseline' in text and 'VGG-16+MLS dashed' in text
  assert '../eval/baseline_vgg16_mls.json' in sources


def test_report_of_a_run_without_keypoints_or_figures(tmp_path):
  (tmp_path / 'config.json').write_text(json.dumps({'data': {'name': 'folder', 'img_size': 64}}))
  records = [dict(step=s, total=1.0 / s, kp=0.5 / s, lr=1e-3) for s in (5, 10, 15)]
  (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
  index = report.write_report(tmp_path)
  page = _parse(index)
  _assert_links_resolve(index, page)
  text = index.read_text(encoding='utf-8')
  assert 'No metrics table' in text and 'No figures yet' in text and not page.tables
  assert (tmp_path / 'report' / 'loss_curves.png').is_file()
  assert not (tmp_path / 'report' / 'pck_curves.png').exists()

  # An evaluation without keypoints holds cycle self-consistency only.
  cycle = {f'{a:.2f}': 0.5 + a for a in np.arange(1, 11) / 100}
  results = dict(collection='folder',
                 k_cycle={'2': dict(pck=cycle, metric='2-cycle self-consistency (alpha * S)')})
  (tmp_path / 'eval').mkdir()
  (tmp_path / 'eval' / 'results.json').write_text(json.dumps(results))
  page = _parse(report.write_report(tmp_path))
  _assert_links_resolve(index, page)
  assert 'no ground-truth keypoints' in index.read_text(encoding='utf-8')
  assert page.tables[0][1:] == [report.percent(cycle[f'{a / 100:.2f}']) for a in range(10, 0, -1)]
  assert (tmp_path / 'report' / 'pck_curves.png').is_file()


def test_damaged_files_are_set_aside_or_left_out_with_a_warning(tmp_path, caplog):
  """A truncated config.json, a garbage results.json and captions.json are set aside (named,
  kept) and the page is written without them; metrics.jsonl (the training's to fix) is only
  read around its garbage line and a last line a run is still writing."""
  (tmp_path / 'config.json').write_text('{"data": {"name": "fol')
  (tmp_path / 'eval').mkdir()
  (tmp_path / 'eval' / 'results.json').write_bytes(b'\xff\xd8\xff\xe0 a JPEG, say')
  (tmp_path / 'figures').mkdir()
  (tmp_path / 'figures' / 'captions.json').write_text('[1, 2')
  records = [dict(step=s, total=1.0 / s, kp=0.5 / s, lr=1e-3) for s in (5, 10)]
  lines = [json.dumps(r) for r in records]
  metrics = (lines[0] + '\n\x00\x01garbage\n' + lines[1] + '\n{"step": 15, "to').encode()
  (tmp_path / 'metrics.jsonl').write_bytes(metrics)
  with caplog.at_level(logging.WARNING, logger='asic_jax'):
    index = report.write_report(tmp_path)
  text = index.read_text(encoding='utf-8')
  assert 'No metrics table' in text and 'No figures yet' in text
  assert (tmp_path / 'report' / 'loss_curves.png').is_file()  # from the two records that read
  for name in ('config.json', 'eval/results.json', 'figures/captions.json'):
    assert (tmp_path / f'{name}.unreadable').is_file() and not (tmp_path / name).exists()
    assert f'{tmp_path / name} does not read' in caplog.text
  assert (tmp_path / 'metrics.jsonl').read_bytes() == metrics
  assert 'metrics.jsonl: 1 lines do not read; the report leaves them out' in caplog.text
