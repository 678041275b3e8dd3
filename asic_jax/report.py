"""One static HTML report per run: `WORKDIR/report/index.html`.

Built from what the workdir holds, whatever produced it: `config.json`, `metrics.jsonl`,
`eval/results.json` and `eval/baseline.json`, the figures in `figures/` (with their
`captions.json`), the edits in `edits/` and the explorers (`report/explore.html`,
`map/<folder>/explore.html`: `asic_jax.explore`), which it links. Any of them may be missing; the
page says so. A JSON file that does not read is set aside (`safe_io.read_json`, with a warning
saying what rebuilds it) and left out like a missing one; so are lines of `metrics.jsonl` that
do not. The page itself has no script, no external style sheet or font and only relative
links, so it opens from disk and survives moving the workdir. Its own plots (the PCK and loss
curves) are drawn into `report/`; the figures are linked where they are (`../figures/x.png`). PCK
values are printed as the evaluation's Markdown tables print them: 100 x, one decimal.
"""

import html
import json
import logging
import pathlib
import urllib.parse

from asic_jax import drawing, safe_io

log = logging.getLogger(__name__)

# Figures in reading order (paper §4.1-4.2, appendix B); others follow by name.
ORDER = ('colour_wheel', 'colour_maps', 'dense_warps', 'canonical_grid', 'keypoint_transfer',
         'pseudo_matches', 'parts_and_masks', 'edit_propagation')
_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; max-width: 900px; }
.gallery img { width: 128px; margin: 2px; image-rendering: pixelated; }
pre { background: #f6f6f6; padding: 1em; font-size: 0.8em; overflow-x: auto; }
"""


def _read_json(path: pathlib.Path, hint: str) -> dict | None:
  found = safe_io.read_json(path, hint)
  return found if isinstance(found, dict) else None


def _read_records(path: pathlib.Path) -> list[dict]:
  """The records of metrics.jsonl. A line that does not read is left out, with a warning
  unless it is the last, unfinished one (a running or killed run's); training sets a damaged
  file aside when it resumes."""
  if not path.is_file():
    return []
  records, bad = [], 0
  for line in path.read_bytes().split(b'\n')[:-1]:
    try:
      record = json.loads(line.decode())
    except ValueError:
      record = None
    if isinstance(record, dict) and isinstance(record.get('step'), int):
      records.append(record)
    elif line.strip():
      bad += 1
  if bad:
    log.warning('%s: %d lines do not read; the report leaves them out', path, bad)
  return records


def _href(path: str) -> str:
  return html.escape(urllib.parse.quote(path), quote=True)


def percent(value: float) -> str:
  """A PCK fraction as the evaluation's tables print it: '36.9'."""
  return f'{100 * value:.1f}'


def _metrics_table(results: dict) -> str:
  rows = [('PCK (pooled over keypoints)', results.get('pck')),
          ('PCK (averaged per pair)', results.get('pck_per_pair'))]
  rows += [(c['metric'], c['pck']) for c in results.get('k_cycle', {}).values()]
  rows = [(name, curve) for name, curve in rows if curve]
  alphas = sorted(rows[0][1], key=float, reverse=True) if rows else []  # 0.10 ... 0.01
  head = ''.join(f'<th>α={a}</th>' for a in alphas)
  body = ''.join(f'<tr><td>{html.escape(name)}</td>' + ''.join(f'<td>{percent(curve[a])}</td>'
                                                               for a in alphas) + '</tr>'
                 for name, curve in rows)
  return f'<table><tr><th>metric (%)</th>{head}</tr>{body}</table>'


def _method_section(title: str, results: dict) -> str:
  facts = []
  if 'protocol' in results:
    facts.append(f'Protocol: {results["protocol"]}.')
    facts.append(f'{results["num_pairs"]} pairs, {results["num_keypoints"]} keypoints.')
  else:
    facts.append('No ground-truth keypoints: the cycle rows are the fraction of foreground '
                 'points that come back within α·S of where they started.')
  for key, label in (('checkpoint_step', 'checkpoint step'), ('config_hash', 'config hash'),
                     ('preset', 'preset')):
    if key in results:
      facts.append(f'{label}: {results[key]}.')
  if 'baseline' in results:
    facts.append('settings: ' +
                 ', '.join(f'{k}={v}' for k, v in sorted(results['baseline'].items())) + '.')
  return (f'<h3>{html.escape(title)}</h3><p>{html.escape(" ".join(facts))}</p>' +
          _metrics_table(results))


def _figure(src: str, caption: str) -> str:
  return (f'<figure><a href="{_href(src)}"><img src="{_href(src)}" alt="{html.escape(caption)}">'
          f'</a><figcaption>{html.escape(caption)}</figcaption></figure>')


def _curves(workdir: pathlib.Path, folder: pathlib.Path, results, baselines) -> list[str]:
  """The PCK and loss plots, drawn into `folder`; their HTML."""
  parts = []
  plot = drawing.pck_plot(results, baselines)
  if plot is not None:
    drawing.write_png(folder / 'pck_curves.png', plot)
    styles = ('dashed', 'dotted', 'dash-dotted')
    named = ', '.join(f'{drawing.method_label(b)} {s}' for b, s in zip(baselines, styles * 9))
    parts.append(
        _figure(
            'pck_curves.png', 'PCK@α of keypoint transfer over image pairs and k-CyPCK '
            '(k-cycles), for α = 0.01 … 0.10: ASIC solid' +
            (f', {named}.' if baselines else ' (no baseline in eval/: --config.mode=baseline).')))
  records = _read_records(workdir / 'metrics.jsonl')
  plot = drawing.loss_plot(records)
  if plot is not None:
    drawing.write_png(folder / 'loss_curves.png', plot)
    parts.append(
        _figure(
            'loss_curves.png', 'Training curves from metrics.jsonl: each weighted loss term, '
            'their total, the learning rate and the gradient norm, against the step.'))
  else:
    parts.append('<p>No training curves (no metrics.jsonl).</p>')
  return parts


def _figures(workdir: pathlib.Path) -> list[str]:
  captions = _read_json(workdir / 'figures' / 'captions.json',
                        'run --config.mode=visualize to draw the figures again') or {}
  names = [n for n in ORDER if n in captions] + sorted(set(captions) - set(ORDER))
  names = [n for n in names if (workdir / 'figures' / f'{n}.png').is_file()]
  if not names:
    return ['<p>No figures yet: run <code>--config.mode=visualize</code>.</p>']
  return [_figure(f'../figures/{name}.png', captions[name]) for name in names]


def _explorers(workdir: pathlib.Path) -> list[str]:
  """Links to the run's explorer and to those of its mapped folders (`mode=map`)."""
  pages = [('explore.html', 'the collection')]
  pages = pages if (workdir / 'report' / 'explore.html').is_file() else []
  pages += [(f'../map/{p.parent.name}/explore.html', f'{p.parent.name} (mapped)')
            for p in sorted((workdir / 'map').glob('*/explore.html'))]
  if not pages:
    return []
  links = ', '.join(f'<a href="{_href(href)}">{html.escape(label)}</a>' for href, label in pages)
  return [
      f'<p><b>Explore the alignment</b> ({links}): click a point on any photo to see its '
      'transfer on every other photo, the canonical colour map and the masks.</p>'
  ]


def _edits(workdir: pathlib.Path) -> list[str]:
  edits = sorted((workdir / 'edits').glob('*.png'))
  if not edits:
    return []
  links = ''.join(
      f'<a href="{_href("../edits/" + f.name)}"><img src="{_href("../edits/" + f.name)}"'
      f' alt="{html.escape(f.stem)}" title="{html.escape(f.stem)}"></a>' for f in edits)
  return [
      '<h2>Edits</h2>', f'<p>The edit carried to each of the {len(edits)} images '
      '(edits/&lt;image name&gt;.png).</p>', f'<div class="gallery">{links}</div>'
  ]


def write_report(workdir: str | pathlib.Path) -> pathlib.Path:
  """Writes `workdir/report/index.html` (and its plots) from the workdir; returns its path."""
  workdir = pathlib.Path(workdir)
  folder = workdir / 'report'
  folder.mkdir(parents=True, exist_ok=True)
  config = _read_json(workdir / 'config.json', 'the report shows no config')
  results = _read_json(workdir / 'eval' / 'results.json',
                       'run --config.mode=eval to evaluate again')
  baselines = [
      _read_json(p, 'run --config.mode=baseline again')
      for p in sorted((workdir / 'eval').glob('baseline_*.json'))
  ]
  baselines = [b for b in baselines if b]

  parts = [f'<h1>ASIC run {html.escape(workdir.absolute().name)}</h1>']
  if config:
    data = config.get('data', {})
    name = ' '.join(str(v) for v in (data.get('name'), data.get('path')) if v)
    parts.append(f'<p>Collection: {html.escape(name)} at {data.get("img_size")} px; '
                 f'preset {html.escape(str(config.get("preset")))}; '
                 f'{config.get("train", {}).get("num_steps")} steps.</p>')
  parts += _explorers(workdir)
  parts.append('<h2>Metrics</h2>')
  if results and 'pck' not in results:
    parts.append('<p>This collection has no ground-truth keypoints: no PCK.</p>')
  if results:
    parts.append(_method_section('ASIC', results))
  else:
    parts.append('<p>No metrics table: this run has no eval/results.json (its collection has '
                 'no ground-truth keypoints, or it was not evaluated: '
                 '<code>--config.mode=eval</code>).</p>')
  for found in baselines:
    parts.append(_method_section(f'{drawing.method_label(found)} baseline', found))
  parts.append('<h2>Curves</h2>')
  parts += _curves(workdir, folder, results, baselines)
  parts.append('<h2>Figures</h2>')
  parts += _figures(workdir)
  parts += _edits(workdir)
  listed = [
      p for p in ('config.json', 'metrics.jsonl', 'eval/results.md', 'eval/results.json')
      if (workdir / p).is_file()
  ] + [f'eval/{p.name}' for p in sorted((workdir / 'eval').glob('baseline_*.*'))]
  if listed:
    parts.append('<h2>Files</h2><ul>' + ''.join(
        f'<li><a href="{_href("../" + p)}">{html.escape(p)}</a></li>' for p in listed) + '</ul>')
  if config:
    parts.append('<h2>Config</h2><pre>' + html.escape(json.dumps(config, indent=2)) + '</pre>')
  page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          f'<title>ASIC run {html.escape(workdir.absolute().name)}</title>'
          f'<style>{_STYLE}</style></head><body>\n' + '\n'.join(parts) + '\n</body></html>\n')
  return safe_io.write_text_atomic(folder / 'index.html', page)
