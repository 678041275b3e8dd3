"""Figures: the colour wheel and dense warps through known flows, pair parsing, saving, and
`mode=visualize` on the tiny training run."""

import colorsys
import json
import shutil

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from asic_jax import drawing, figures
from asic_jax.errors import UserError
from asic_jax.evaluation import transfer
from asic_jax.jobs import visualize as visualize_job
from asic_jax.ops import sampling
from conftest import load_config

SIZE = 16


def _blob_mask(size=SIZE):
  yy, xx = np.mgrid[:size, :size]
  mask = ((xx - 7.0)**2 / 30 + (yy - 8.0)**2 / 20 < 1).astype(np.float32)
  mask[0, 0] = 0.3  # soft: neither carried (< 0.5) nor refused as a target (>= 0.1)
  return mask


def test_colour_wheel_is_hsv_of_angle_and_radius():
  rng = np.random.default_rng(0)
  coords = rng.uniform(-1, 1, size=(200, 2))
  out = np.asarray(figures.colour_wheel(jnp.asarray(coords, jnp.float32)))
  for (x, y), rgb in zip(coords, out):
    radius = np.hypot(x, y)
    value = 1 - 0.25 * np.clip((radius - 1) / (np.sqrt(2) - 1), 0, 1)
    expected = colorsys.hsv_to_rgb((np.arctan2(y, x) / (2 * np.pi)) % 1, min(radius, 1), value)
    np.testing.assert_allclose(rgb, expected, atol=1e-5)
  anchors = np.asarray(figures.colour_wheel(jnp.asarray([[0, 0], [1, 0], [-1, 0], [1, 1.0]])))
  np.testing.assert_allclose(anchors, [[1, 1, 1], [1, 0, 0], [0, 1, 1], [0.75, 0.75 * 0.75, 0]],
                             atol=1e-5)


def test_colour_map_of_identity_flows_is_the_wheel():
  identity = jnp.broadcast_to(sampling.identity_grid(SIZE, SIZE), (2, SIZE, SIZE, 2))
  maps = np.asarray(figures.colour_maps(identity, SIZE))
  np.testing.assert_allclose(maps,
                             np.broadcast_to(figures.wheel_image(SIZE), maps.shape),
                             atol=1e-5)
  # Blended over a foreground: the wheel where mask = 1, the image where mask = 0.
  image = np.full((SIZE, SIZE, 3), 0.2, np.float32)
  mask = _blob_mask()
  blended = np.asarray(figures.overlay(image, maps[0], mask))
  np.testing.assert_allclose(blended[mask == 1], maps[0][mask == 1], atol=1e-6)
  np.testing.assert_allclose(blended[mask == 0], 0.2, atol=1e-6)


def test_dense_warp_through_identity_flows_returns_the_source():
  image = np.random.default_rng(1).uniform(size=(SIZE, SIZE, 3)).astype(np.float32)
  mask = _blob_mask()
  identity = sampling.identity_grid(SIZE, SIZE)
  warped, weight = figures.dense_warp(image, identity, mask, identity, mask)
  foreground = mask >= transfer.FOREGROUND
  np.testing.assert_array_equal(np.asarray(weight), foreground.astype(np.float32))
  np.testing.assert_allclose(np.asarray(warped)[foreground], image[foreground], atol=1e-6)
  assert np.all(np.asarray(warped)[~foreground] == 0)


def test_dense_warp_follows_the_target_flow():
  # Target pixel x shows canonical point x - 1: each source pixel lands one pixel right.
  image = np.random.default_rng(2).uniform(size=(SIZE, SIZE, 3)).astype(np.float32)
  mask = _blob_mask()
  identity = sampling.identity_grid(SIZE, SIZE)
  shifted = identity - jnp.asarray([2.0 / (SIZE - 1), 0.0])
  warped, weight = figures.dense_warp(image, identity, mask, shifted, jnp.ones((SIZE, SIZE)))
  foreground = mask >= transfer.FOREGROUND
  expected_weight = np.zeros((SIZE, SIZE), np.float32)
  expected_weight[:, 1:] = foreground[:, :-1]
  np.testing.assert_array_equal(np.asarray(weight), expected_weight)
  rows, cols = np.nonzero(foreground)
  np.testing.assert_allclose(np.asarray(warped)[rows, cols + 1], image[rows, cols], atol=1e-6)


def test_pairs_by_name_or_index():
  names = ('cat-01', 'cat-02', 'dog')
  assert figures.parse_pairs('cat-01-dog, 1-0,2-cat-02', names) == [(0, 2), (1, 0), (2, 1)]
  with pytest.raises(UserError, match='vis.pairs'):
    figures.parse_pairs('cat-01-cow', names)
  vis = ml_collections.ConfigDict(dict(pairs='dog-cat-01', random_pairs=5))
  pairs = figures.choose_pairs(vis, names, seed=0)
  assert pairs[0] == (2, 0) and len(pairs) == 6 == len(set(pairs))
  assert all(a != b for a, b in pairs) and pairs == figures.choose_pairs(vis, names, seed=0)


def test_visualize_run_writes_every_figure_kind(tiny_run, tmp_path):
  """Also when the workdir's eval/results.json and figures/captions.json are garbage: set
  aside (kept), the captions rebuilt, the report written without the results."""
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  (workdir / 'eval' / 'results.json').write_bytes(b'\x89PNG\r\n not json')
  (workdir / 'figures' / 'captions.json').write_text('{"colour_maps": "cut sho')
  sticker = np.zeros((20, 30, 4), np.uint8)
  sticker[5:15, 5:25] = [255, 0, 0, 255]
  Image.fromarray(sticker).save(tmp_path / 'sticker.png')
  config = load_config(
      'base', **{
          'mode': 'visualize',
          'vis.size': 32,
          'vis.pairs': '0-1',
          'vis.random_pairs': 1,
          'edit.image': str(tmp_path / 'sticker.png'),
          'edit.on': 'synthetic_002'
      })
  summary = visualize_job.run(config, workdir)
  kinds = {
      'colour_wheel', 'colour_maps', 'dense_warps', 'canonical_grid', 'keypoint_transfer',
      'pseudo_matches', 'parts_and_masks', 'edit_propagation'
  }
  assert summary['step'] == 20 and set(summary['figures']) == kinds and summary['edits'] == 6
  captions = json.loads((workdir / 'figures' / 'captions.json').read_text())
  assert set(captions) == kinds and all(len(c) > 40 for c in captions.values())
  for kind in kinds:
    with Image.open(workdir / 'figures' / f'{kind}.png') as image:
      assert image.mode == 'RGB' and image.size[1] >= 32
  # Dense warps: one 32-px column per pair, three rows (source, target, warp).
  with Image.open(workdir / 'figures' / 'dense_warps.png') as image:
    assert image.size == (2 * 32 + 2, 3 * 32 + 2 * 2)
  names = sorted(p.stem for p in (workdir / 'edits').glob('*.png'))
  assert names == [f'synthetic_{i:03d}' for i in range(6)]
  with Image.open(workdir / 'edits' / 'synthetic_000.png') as image:
    assert image.size == (32, 32)
  assert (workdir / 'report' / 'index.html').is_file()
  assert (workdir / 'eval' / 'results.json.unreadable').read_bytes() == b'\x89PNG\r\n not json'
  assert 'No metrics table' in (workdir / 'report' / 'index.html').read_text()


def test_save_writes_pngs_and_merges_captions(tmp_path):
  first = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
  figures.save({'a': (first, 'one')}, tmp_path)
  figures.save({'b': (first[::-1], 'two')}, tmp_path)
  assert json.loads((tmp_path / 'captions.json').read_text()) == {'a': 'one', 'b': 'two'}
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'b.png')), first[::-1])
