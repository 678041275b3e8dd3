"""The Python API over a trained run: the same transfer as mode=eval, original-photo frames,
photos outside the collection, edits, export, mode=map and its bad input."""

import json
import re
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import asic_jax
from asic_jax import api, restore
from asic_jax import flows as flows_lib
from asic_jax.correspondences import extract
from asic_jax.data import images as images_lib
from asic_jax.errors import UserError
from asic_jax.evaluation import protocol, transfer
from asic_jax.jobs import map as map_job
from conftest import ROOT, run_cli


@pytest.fixture(scope='module')
def run(tiny_run):
  return asic_jax.load(tiny_run)


def test_refine_transfer_is_eval_s_refine(run, tiny_run, tmp_path):
  """`transfer(method='refine')` is `mode=eval`'s refine: the same descriptors (the backbone's,
  here the bundled VGG-16, read through the extraction cache), prior and temperature, and it
  moves points away from the canonical transfer."""
  config, collection, state, step = restore.restore_run(None, tiny_run)
  config.features.backbone, config.features.cache_dir = 'vgg16', str(tmp_path)
  refined = api.Alignment(config, collection, state, step, run._flows)
  pairs = collection.eval_pairs
  fn = protocol.flow_transfer(run._flows,
                              collection.masks,
                              8,
                              method='refine',
                              descriptors=extract.match_descriptors(collection, config),
                              refine_sigma=protocol.refine_sigma_px(config, collection.size),
                              refine_temperature=config.eval.refine_temperature)
  expected = fn(pairs.src[:6], pairs.trg[:6], pairs.src_points[:6])
  for e in range(6):
    got = refined.transfer(pairs.src_points[e],
                           int(pairs.src[e]),
                           int(pairs.trg[e]),
                           method='refine')
    np.testing.assert_allclose(got, expected[e], atol=1e-4)
  nearest = np.stack(
      [run.transfer(pairs.src_points[e], int(pairs.src[e]), int(pairs.trg[e])) for e in range(6)])
  assert np.abs(nearest - expected).max() > 0.1


def test_transfer_is_exactly_eval_transfer(run, tiny_run):
  """In the S frame (the synthetic squares are their own photos) the API's transfer is
  `mode=eval`'s: the same flows, the same nearest pixel, for every evaluation pair."""
  config, collection, state, step = restore.restore_run(None, tiny_run)
  assert step == run.step == 20
  flows = flows_lib.collection_flows(config, state, collection.images)
  pairs = collection.eval_pairs
  expected = np.asarray(
      transfer.transfer_pairs(flows, jnp.asarray(collection.masks), jnp.asarray(pairs.src),
                              jnp.asarray(pairs.trg), jnp.asarray(pairs.src_points)))
  for e in range(len(pairs)):
    got = run.transfer(pairs.src_points[e], int(pairs.src[e]), int(pairs.trg[e]))
    np.testing.assert_array_equal(got, expected[e])
  every = run.transfer(pairs.src_points[0], 0, 'all')
  assert sorted(every) == sorted(run.names[1:])
  np.testing.assert_array_equal(every[run.names[int(pairs.trg[0])]], expected[0])


def test_points_and_maps_are_in_the_original_photos_frame(run):
  """A 40 x 26 photo padded to its 40 x 40 square (then 32 px): points go through its frame
  both ways, and its canonical map has the photo's own shape."""
  frame = images_lib.SquareFrame(0, 7, 32 / 40, 40, 26)
  view = api.Alignment(run.config, run.collection.replace(frames=(frame,) * len(run)), run._state,
                       run.step, run._flows)  # pylint: disable=protected-access
  points = np.asarray([[3.0, 2.0], [39.0, 25.0], [20.5, 12.25]])
  np.testing.assert_allclose(frame.to_original(frame.points(points)), points, atol=1e-5)
  got = view.transfer(points, 0, 2)
  square = run.transfer(frame.points(points), 0, 2)  # the same points, in the S frame
  np.testing.assert_allclose(got, frame.to_original(square), atol=1e-9)
  coords, mask = view.canonical(0)
  assert coords.shape == (26, 40, 2) and mask.shape == (26, 40)
  s_coords, _ = run.canonical(0)
  at = frame.points(np.asarray([[0.0, 0.0]]))[0]  # the photo's corner, inside the square
  np.testing.assert_allclose(coords[0, 0], s_coords[int(round(at[1])), int(round(at[0]))], atol=0.1)
  with pytest.raises(api.PointOutside, match=r'point 0 \[10.0, 30.0\] is outside image'):
    view.transfer([[10.0, 30.0]], 0, 1)  # below the photo, inside its padded square
  assert view.photo(0).shape == (26, 40, 3) and view.colour_map(1).shape == (26, 40, 3)


def test_a_collection_image_mapped_as_new_lands_where_it_is(run):
  """`map` runs the U-Net with the collection's BatchNorm statistics: a collection image
  passed in again as a new photo gets its own canonical map back."""
  photo = np.rint((run.collection.images[3] + 1) * 127.5).astype(np.uint8)
  mapped = run.map([photo], masks=[run.collection.masks[3]], names=['again'])
  assert mapped.names[-1] == 'again' and len(mapped) == len(run) + 1
  again, _ = mapped.canonical('again')
  own, _ = run.canonical(3)
  # The photo went through uint8 (up to half a level from the float image): 1e-3 in canonical
  # units is 1/60 of a pixel at 32 px.
  assert np.abs(again - own).max() < 1e-3
  points = run.collection.keypoints[0][run.collection.visibility[0]]
  moved = mapped.transfer(points, 0, 'again') - run.transfer(points, 0, 3)
  assert np.abs(moved).max() <= 1.0  # the same pixel, or a neighbour where two nearly tie


def test_flow_warp_edit_and_export(run, tmp_path):
  flow, valid = run.flow(0, 1)
  assert flow.shape == (32, 32, 2) and valid.dtype == bool and valid.any()
  np.testing.assert_array_equal(valid, run.collection.masks[1] >= 0.5)
  # From an image to itself, every foreground pixel's nearest canonical coordinate is its own.
  own, own_valid = run.flow(1, 1)
  xs, ys = np.meshgrid(np.arange(32), np.arange(32), indexing='xy')
  here = np.stack([xs, ys], -1)
  assert np.mean(np.all(own[own_valid] == here[own_valid], axis=-1)) > 0.95
  # Between two images, the flow's positions are the transfer's, pixel by pixel.
  some = np.argwhere(valid)[:20][:, ::-1].astype(np.float64)  # (x, y) target pixels
  back = run.transfer(some, 1, 0)
  np.testing.assert_array_equal(flow[some[:, 1].astype(int), some[:, 0].astype(int)], back)
  warped, warped_valid = run.warp(0, 1)
  assert warped.shape == (32, 32, 3) and warped.dtype == np.uint8
  np.testing.assert_array_equal(warped_valid, valid)
  assert np.all(warped[~valid] == 0)
  edited = run.propagate(np.ones((4, 4, 4)) * [1.0, 0.0, 0.0, 1.0])
  assert sorted(edited) == sorted(run.names) and edited[run.names[0]].shape == (32, 32, 3)
  red = edited[run.names[0]][run.collection.masks[0] > 0.99]
  assert np.mean(np.all(red == [255, 0, 0], axis=-1)) > 0.9  # the foreground, painted over
  path = run.export(tmp_path / 'all.npz')
  with np.load(path, allow_pickle=False) as saved:
    assert list(saved['names']) == list(run.names)
    assert saved['canonical'].shape == (6, 32, 32, 2) and saved['masks'].shape == (6, 32, 32)
    np.testing.assert_array_equal(saved['frames'][0], [0, 0, 1, 32, 32])
    coords, _ = run.canonical(2)
    np.testing.assert_allclose(saved['canonical'][2], coords, atol=1e-6)


def test_bad_references_are_clear_exceptions(run, tmp_path):
  with pytest.raises(api.UnknownImage, match="no image 'zebra' in this alignment: 6 images"):
    run.transfer([[1, 1]], 'zebra', 0)
  with pytest.raises(KeyError):  # a lookup error, as a dict's
    run.canonical(6)
  with pytest.raises(api.PointOutside,
                     match=r"point 1 \[40.0, 2.0\] is outside image "
                     r"'synthetic_000' \(32 x 32 px\)"):
    run.transfer([[1, 1], [40, 2]], 0, 1)
  with pytest.raises(UserError, match=r'must be \[K, 2\]'):
    run.transfer([1, 2, 3], 0, 1)
  # Points are numbers: not text, even text of digits, and not true/false.
  for points, shown in ((['a', 'b'], "'a' (str)"), ([['12', '20']], "'12' (str)"),
                        ([[True, False]], 'True (bool)'), ([[1.0, None]], 'None (NoneType)')):
    with pytest.raises(UserError, match=rf'points: expected numbers, got {re.escape(shown)}'):
      run.transfer(points, 0, 1)
  with pytest.raises(UserError, match=rf'export: {tmp_path} is a folder; give a file path'):
    run.export(tmp_path)
  with pytest.raises(UserError, match='no checkpoint in'):
    asic_jax.load(tmp_path)
  with pytest.raises(UserError, match="names: 'synthetic_001' is taken"):
    run.map([np.zeros((8, 8, 3), np.uint8)], names=['synthetic_001'])


def test_mode_map_writes_maps_points_and_edits(tiny_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  photos = tmp_path / 'new'
  photos.mkdir()
  rng = np.random.default_rng(0)
  for i, (w, h) in enumerate(((40, 30), (24, 36))):
    Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(photos / f'n{i}.png')
  (tmp_path / 'points.json').write_text(json.dumps([[4, 5], [20, 9]]))
  sticker = np.zeros((8, 8, 4), np.uint8)
  sticker[..., 0] = sticker[..., 3] = 255
  Image.fromarray(sticker, 'RGBA').save(tmp_path / 'sticker.png')
  result = run_cli('--config=configs/tiny.py', f'--workdir={workdir}', '--config.mode=map',
                   f'--config.map.path={photos}',
                   f'--config.map.keypoints=synthetic_002:{tmp_path / "points.json"}',
                   f'--config.edit.image={tmp_path / "sticker.png"}')
  assert result.returncode == 0, result.stderr[-3000:]
  out = workdir / 'map' / 'new'
  saved = json.loads((out / 'points.json').read_text())
  assert saved['source'] == 'synthetic_002' and saved['points'] == [[4, 5], [20, 9]]
  assert sorted(saved['transferred']) == ['n0', 'n1']
  for name, (w, h) in (('n0', (40, 30)), ('n1', (24, 36))):
    for kind in ('colour_maps', 'points', 'edits'):
      assert Image.open(out / kind / f'{name}.png').size == (w, h), (kind, name)
    moved = np.asarray(saved['transferred'][name])
    assert moved.shape == (2, 2) and np.all((moved >= -0.5) & (moved <= [w - 0.5, h - 0.5]))
  with np.load(out / 'canonical.npz', allow_pickle=False) as maps:
    assert maps['canonical_n0'].shape == (30, 40, 2) and maps['mask_n1'].shape == (36, 24)
  # The explorer of the collection and the new photos, linked from the refreshed report.
  assert 'id="explorer-data"' in (out / 'explore.html').read_text()
  assert 'href="../map/new/explore.html"' in (workdir / 'report' / 'index.html').read_text()


@pytest.mark.parametrize('setting,message', [
    ('--config.map.path=', 'config.map.path: give a folder of photos'),
    ('--config.map.path={empty}', 'config.map.path: no image files in'),
    ('--config.map.keypoints=synthetic_002:{missing}', 'config.map.keypoints: cannot read'),
    ('--config.map.keypoints=nobody:{missing}', "no image 'nobody' in this alignment"),
])
def test_mode_map_bad_input_is_one_line_and_writes_nothing(tiny_run, tmp_path, setting, message):
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  empty = tmp_path / 'empty'
  empty.mkdir()
  photos = tmp_path / 'new'
  photos.mkdir()
  Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photos / 'a.png')
  setting = setting.format(empty=empty, missing=tmp_path / 'missing.json')
  args = [f'--config.map.path={photos}', setting] if 'map.path' not in setting else [setting]
  result = run_cli('--config=configs/tiny.py', f'--workdir={workdir}', '--config.mode=map', *args)
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1].startswith('error: ') and message in result.stderr
  assert not (workdir / 'map').exists()


def test_the_readme_example_runs_as_written(tiny_run, tmp_path):
  """The README's "After training" example, with its run and photo paths pointed here."""
  text = (ROOT / 'README.md').read_text()
  code = text.split('<!-- after-training-example -->')[1].split('```python')[1].split('```')[0]
  assert 10 <= len([line for line in code.splitlines() if line.strip()]) <= 14
  photos = tmp_path / 'photos'
  photos.mkdir()
  Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 40, 3),
                                                    np.uint8)).save(photos / 'new_photo.jpg')
  code = code.replace("'runs/tiny'",
                      repr(str(tiny_run))).replace("'photos/new_photo.jpg'",
                                                   repr(str(photos / 'new_photo.jpg')))
  code = code.replace("'tiny.npz'", repr(str(tmp_path / 'tiny.npz')))
  namespace = {}
  exec(compile(code, 'README.md', 'exec'), namespace)  # pylint: disable=exec-used
  assert (tmp_path / 'tiny.npz').is_file()


def test_mode_map_again_replaces_the_last_runs_outputs_whole(tiny_run, tmp_path):
  """A photo that left the folder leaves nothing behind: each run's outputs are one set."""
  from conftest import load_config  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / 'run'
  shutil.copytree(tiny_run, workdir)
  photos = tmp_path / 'new'
  photos.mkdir()
  for name in ('kept', 'gone'):
    Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(photos / f'{name}.png')
  config = load_config('tiny', **{'mode': 'map', 'map.path': str(photos)})
  map_job.run(config, workdir)
  out = workdir / 'map' / 'new'
  assert sorted(p.name for p in (out / 'colour_maps').iterdir()) == ['gone.png', 'kept.png']
  (photos / 'gone.png').unlink()
  map_job.run(config, workdir)
  assert sorted(p.name for p in (out / 'colour_maps').iterdir()) == ['kept.png']
  assert sorted(p.name for p in (out / 'points').iterdir()) == ['kept.png']
  with np.load(out / 'canonical.npz', allow_pickle=False) as maps:
    assert list(maps['names']) == ['kept'] and 'canonical_gone' not in maps.files
  assert sorted(p.name for p in out.parent.iterdir()) == ['new']  # no staging folder left
