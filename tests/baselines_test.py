"""The baselines: NN and NBB-style MLS transfer over DINO or VGG-16, under ASIC's protocol."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from asic_jax.correspondences import extract
from asic_jax.errors import UserError
from asic_jax.evaluation import baselines
from asic_jax.jobs import baseline as baseline_job
from conftest import load_config


def _mls_by_the_paper(p, q, v, alpha=1.0):
  """Schaefer et al. 2006, Eq. 5, written out point by point in float64."""
  w = 1.0 / np.sum((p - v)**2, axis=1)**alpha
  p_star, q_star = w @ p / w.sum(), w @ q / w.sum()
  ph, qh = p - p_star, q - q_star
  moment = sum(w[i] * np.outer(ph[i], ph[i]) for i in range(len(p)))
  cross = sum(w[i] * np.outer(ph[i], qh[i]) for i in range(len(p)))
  return (v - p_star) @ np.linalg.inv(moment) @ cross + q_star


def test_mls_equals_a_hand_computed_warp():
  """Unit square, its corner (1, 1) pulled to (2, 2); v = (1, 0.5).

  By hand: squared distances 1.25, 0.25, 1.25, 0.25 give w = 0.8, 4, 0.8, 4 (sum 9.6);
  p* = (8, 4.8) / 9.6 = (5/6, 1/2), q* = (12, 8.8) / 9.6 = (5/4, 11/12). The weighted
  moments are M = sum w p^T p^ = [[4/3, 0], [0, 2.4]] and C = sum w p^T q^ = [[2, 2/3],
  [2, 4.4]], so v - p* = (1/6, 0) moves by (1/6)(3/4)(2, 2/3) = (1/4, 1/12) to
  f(v) = (5/4 + 1/4, 11/12 + 1/12) = (3/2, 1).
  """
  p = np.asarray([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
  q = np.asarray([[0, 0], [1, 0], [0, 1], [2, 2]], np.float32)
  v = np.asarray([[1.0, 0.5]], np.float32)
  got = np.asarray(baselines.mls_affine(p, q, np.ones(4, bool), v))
  np.testing.assert_allclose(got[0], [1.5, 1.0], atol=1e-5)
  np.testing.assert_allclose(got[0], _mls_by_the_paper(p, q, v[0]), atol=1e-5)


def test_mls_recovers_an_affine_map_exactly_and_ignores_padding():
  rng = np.random.default_rng(0)
  p = rng.uniform(-1, 1, (40, 2)).astype(np.float32)
  a = np.asarray([[1.2, 0.3], [-0.2, 0.9]], np.float32)
  b = np.asarray([0.1, -0.25], np.float32)
  q = p @ a.T + b
  valid = np.ones(40, bool)
  valid[30:] = False
  q[30:] = 100.0  # padding rows hold garbage that must not count
  v = rng.uniform(-1, 1, (25, 2)).astype(np.float32)
  np.testing.assert_allclose(baselines.mls_affine(p, q, valid, v), v @ a.T + b, atol=2e-5)
  # A keypoint on a control point lands on its image; generic MLS against the paper's formula.
  np.testing.assert_allclose(baselines.mls_affine(p, q, valid, p[:3]), q[:3], atol=1e-6)
  bent = q + 0.1 * np.sin(3 * p)
  np.testing.assert_allclose(
      baselines.mls_affine(p, bent, np.ones(40, bool), v),
      np.stack([_mls_by_the_paper(p.astype(np.float64), bent, x) for x in v]),
      atol=1e-4)


def test_mls_with_too_few_control_points_translates_or_stays():
  p = np.asarray([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]], np.float32)
  q = p + np.asarray([0.5, -0.5], np.float32)
  v = np.asarray([[3.0, 4.0]], np.float32)
  two = np.asarray([True, True, False])
  np.testing.assert_allclose(baselines.mls_affine(p, q, two, v), [[3.5, 3.5]], atol=1e-5)
  none = np.zeros(3, bool)
  np.testing.assert_allclose(baselines.mls_affine(p, q, none, v), v)


def test_nearest_patch_equals_brute_force():
  rng = np.random.default_rng(0)
  desc = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
  centers = np.stack(np.meshgrid(np.arange(5) * 4 + 4.0, np.arange(4) * 4 + 4.0), -1)
  points = rng.uniform(0, 22, size=(2, 7, 2)).astype(np.float32)
  src, trg = np.asarray([0, 2]), np.asarray([1, 0])
  got = baselines.nearest_patches(jnp.asarray(desc), jnp.asarray(centers), jnp.asarray(src),
                                 jnp.asarray(trg), jnp.asarray(points))
  flat = desc.reshape(3, 20, 6) / np.linalg.norm(desc.reshape(3, 20, 6), axis=-1, keepdims=True)
  c = centers.reshape(20, 2)
  for e in range(2):
    patch = np.argmin(((points[e][:, None] - c[None])**2).sum(-1), 1)
    best = np.argmax(flat[src[e]][patch] @ flat[trg[e]].T, 1)
    np.testing.assert_allclose(got[e], c[best])


def test_dino_nn_baseline_writes_the_same_protocol(tiny_vit, tmp_path):
  config = load_config(
      'tiny', **{
          'mode': 'baseline',
          'features.model': str(tiny_vit),
          'baseline.img_size': 64,
          'eval.cycle_ks': (2,)
      })
  results = baseline_job.run(config, tmp_path)
  assert results['method'] == 'dino_nn' and results['baseline']['stride'] == 4
  assert results['baseline']['bin_hierarchy'] == 2 and results['baseline']['img_size'] == 64
  assert results['num_pairs'] == 30 and results['threshold'] == 'bbox'
  assert set(results['pck']) == {f'{a:.2f}' for a in np.arange(1, 11) / 100}
  assert 0 <= results['pck']['0.10'] <= 1 and list(results['k_cycle']) == ['2']
  saved = json.loads((tmp_path / 'eval' / 'baseline_dino_nn.json').read_text())
  assert saved == results


def test_dinov2_baseline_takes_its_own_model_and_names_its_strides(tiny_dinov2, tmp_path):
  settings = {
      'mode': 'baseline',
      'features.backbone': 'dinov2',
      'features.dinov2.model': str(tiny_dinov2),
      'eval.cycle_ks': (2,)
  }
  with pytest.raises(UserError, match='the stride 4 must divide the patch size 14'):
    baseline_job.run(load_config('tiny', **settings), tmp_path)  # dvd: DINO's stride 4
  results = baseline_job.run(load_config('tiny', **settings, **{'baseline.preset': 'asic'}),
                                  tmp_path)
  assert results['method'] == 'dinov2_nn' and results['baseline']['stride'] == 2
  assert results['baseline']['model'] == str(tiny_dinov2) and results['num_pairs'] == 30
  assert (tmp_path / 'eval' / 'baseline_dinov2_nn.md').read_text().count('DINOv2+NN') >= 1


def test_baseline_on_a_folder_with_keypoints_needs_no_extraction(tiny_vit, tmp_path, monkeypatch):
  monkeypatch.setattr(extract, 'add_correspondences',
                      lambda *a, **k: pytest.fail('the baseline ran the ASIC extraction'))
  rng = np.random.default_rng(0)
  for i in range(3):
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / f'p{i}.png')
  (tmp_path / 'keypoints.json').write_text(
      json.dumps({f'p{i}.png': [[10, 10, 1], [30, 20, 1]] for i in range(3)}))
  config = load_config(
      'folder', **{
          'mode': 'baseline',
          'data.path': str(tmp_path),
          'data.img_size': 32,
          'features.model': str(tiny_vit),
          'baseline.img_size': 32,
          'baseline.method': 'mls',
          'eval.cycle_ks': (2,)
      })
  results = baseline_job.run(config, tmp_path / 'run')
  assert results['method'] == 'dino_mls' and results['baseline']['mls_alpha'] == 1.0
  assert results['num_pairs'] == 6 and results['threshold'] == 'img'
  assert results['num_keypoints'] == 12


def test_an_unknown_method_is_named():
  config = load_config('tiny', **{'mode': 'baseline', 'baseline.method': 'sift'})
  with pytest.raises(UserError, match="config.baseline.method must be one of \\('nn', 'mls'\\)"):
    baseline_job.run(config, '/nonexistent')


@pytest.mark.parametrize('method', ['nn', 'mls'])
def test_vgg_baselines_on_real_photos_beat_the_identity_map(data_dir, tmp_path, method):
  """PF-WILLOW duck at 128 px: the identity map scores PCK@0.10 0.25 (measured); VGG
  relu4_3 NN 0.54 (DESIGN §7). MLS carries keypoints by the pair's mutual matches."""
  config = load_config(
      'pfwillow', 'duck', **{
          'mode': 'baseline',
          'data.root': str(data_dir),
          'data.img_size': 128,
          'features.backbone': 'vgg16',
          'baseline.method': method,
          'eval.cycle_ks': (4,)
      })
  results = baseline_job.run(config, tmp_path)
  assert results['method'] == f'vgg16_{method}' and results['num_pairs'] == 90
  assert results['pck']['0.10'] > 0.40, results['pck']


def test_oriented_descriptors_describe_flipped_photos_as_their_mirror_images():
  """With `features.orient`, a flipped photo is described as its mirror image, put back on the
  photo's grid, as ASIC's extraction does; the others as they are."""
  images = np.random.default_rng(0).normal(size=(3, 4, 6, 2)).astype(np.float32)
  describe = lambda x: np.cumsum(np.asarray(x), axis=2)  # not mirror-symmetric
  flipped = np.asarray([False, True, False])
  found = baselines._oriented(describe, images, flipped)
  np.testing.assert_allclose(found[[0, 2]], describe(images)[[0, 2]])
  np.testing.assert_allclose(found[1], describe(images[1:2, :, ::-1])[0][:, ::-1], rtol=1e-6)
  np.testing.assert_allclose(baselines._oriented(describe, images, None), describe(images))
