"""Measures the explorer of a trained run: its page's size, its load and click times in headless
chromium, and how often its transfer lands on `asic_jax.load(...).transfer`'s pixel.

  python scripts/measure_explorer.py --workdir=runs/duck --map=photos/more --clicks=300

`--map` folders are mapped into the run first (as `mode=map` does), so a collection of 10 can be
measured at 30 photos. Random clicks fall on random photos' pixels (uniform over each photo);
every click is carried to every other photo and compared with the API there. Prints one JSON
record. Needs chromium (tests/browser.py).
"""

import argparse
import json
import os
import pathlib
import re
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'tests'))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

# pylint: disable=wrong-import-position
import numpy as np

import asic_jax
import browser
from asic_jax import explore


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', type=pathlib.Path, required=True)
  parser.add_argument('--map', type=pathlib.Path, action='append', default=[])
  parser.add_argument('--clicks', type=int, default=200)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  run = asic_jax.load(args.workdir)
  alignment, known = run, len(run)
  for folder in args.map:
    alignment = alignment.map(folder)
  c = run.collection
  with tempfile.TemporaryDirectory() as tmp:
    path = pathlib.Path(tmp) / 'explore.html'
    start = time.perf_counter()
    explore.write_explorer(alignment,
                           path,
                           keypoints=c.keypoints,
                           visibility=c.visibility,
                           mapped_from=known if len(alignment) > known else None)
    written_s = time.perf_counter() - start
    text = path.read_text()
    data = json.loads(
        re.search(r'id="explorer-data">(.*?)</script>', text, re.S).group(1).replace('<\\/', '</'))
    record = dict(photos=len(alignment),
                  size_px=alignment.size,
                  page_bytes=len(text.encode()),
                  maps_bytes=len(data['maps']['maps']),
                  photos_bytes=sum(len(im['photo']) for im in data['images']),
                  write_s=round(written_s, 2))
    rng = np.random.default_rng(args.seed)
    with browser.Chromium() as chromium:
      opened = time.perf_counter()
      page = chromium.open(path.as_uri())
      page.wait_for('document.body.dataset.ready')
      record['open_to_ready_s'] = round(time.perf_counter() - opened, 3)
      record['script_load_ms'] = round(page.evaluate('explorer.timings.load_ms'))
      same = total = 0
      times = []
      for _ in range(args.clicks):
        source = int(rng.integers(len(alignment)))
        frame = alignment.frame(source)
        point = [float(rng.uniform(0, frame.width - 1)), float(rng.uniform(0, frame.height - 1))]
        got = page.evaluate(f'(() => {{ const t0 = performance.now(); const out = {{}};'
                            f' for (let t = 0; t < {len(alignment)}; t++) if (t !== {source})'
                            f' out[t] = explorer.transfer({source}, {point[0]}, {point[1]}, t);'
                            f' return [performance.now() - t0, out]; }})()')
        times.append(got[0])
        try:
          want = alignment.transfer([point], source, 'all')
        except asic_jax.api.PointOutside:
          continue
        for t, xy in got[1].items():
          total += 1
          same += bool(np.allclose(xy, want[alignment.names[int(t)]][0], atol=1e-6))
  record.update(click_ms_median=round(float(np.median(times)), 1),
                click_ms_max=round(float(np.max(times)), 1),
                transfers=total,
                same_pixel_as_api=round(same / max(total, 1), 4))
  print(json.dumps(record))


if __name__ == '__main__':
  main()
