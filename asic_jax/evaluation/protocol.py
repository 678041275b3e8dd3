"""Evaluation under each dataset's protocol, written to `WORKDIR/eval/`: `evaluate` scores ASIC's
transfer through a run's flows (`mode=eval`, the end of training); `score` is the protocol the
baselines (`asic_jax.evaluation.baselines`) share.

`eval/results.json` (ASIC) and `eval/baseline_*.json` (the baselines) hold every number with its
protocol: PCK@alpha for alpha = 0.10 ... 0.01, pooled over keypoints and averaged per
image pair; k-CyPCK for k = 2, 3, 4 (or the cycle self-consistency of foreground points
when the collection has no keypoints); `num_pairs`, `num_keypoints`, the checkpoint step
and a hash of the training config. `results.md` / `baseline.md` hold the same as tables.
"""

import json
import logging
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asic_jax import config_lib, parallel, safe_io
from asic_jax.correspondences import extract, matching
from asic_jax.data import collection as collection_lib
from asic_jax.data import thresholds as thresholds_lib
from asic_jax.evaluation import metrics
from asic_jax.evaluation import transfer as transfer_lib

log = logging.getLogger(__name__)

# How ASIC's transfer picks its pixel, for the protocol line (DESIGN §5).
NEAREST = 'the target pixel with the nearest canonical coordinate among those with mask >= 0.1'


def _protocol(collection: collection_lib.Collection, transfer: str) -> str:
  kind = collection.threshold_kind
  length = {
      'bbox': "max side of the target's object box",
      'img': 'the image side S',
      'kp_bbox': "max side of the tight box around the target's annotated keypoints"
  }[kind]
  return (f'PCK@alpha: ||pred - gt|| < alpha * L, L = {length} ({kind}, S = {collection.size} '
          f'px frame), pooled over keypoints; transfer: {transfer}')


def _curve(values: np.ndarray) -> dict[str, float]:
  return {f'{a:.2f}': float(v) for a, v in zip(metrics.ALPHAS, values)}


def score(collection: collection_lib.Collection,
          transfer_fn: metrics.TransferFn,
          config: ml_collections.ConfigDict,
          transfer: str = NEAREST) -> dict:
  """Every metric of `transfer_fn` on the collection (pairs in the S frame); `transfer` says
  how it picks its pixels, for the protocol line."""
  e = config.eval
  # The dataset and category from the config that loaded the collection: results files (a
  # baseline's workdir holds nothing else) say which table they belong to without parsing
  # the collection's name (`launch.aggregate`).
  out = dict(collection=collection.name,
             dataset=config.data.name,
             category=str(config.data.get('category', collection.name)),
             size=collection.size,
             alphas=list(metrics.ALPHAS))
  ks = tuple(int(k) for k in e.cycle_ks)
  if collection.eval_pairs is not None:
    pairs = collection.eval_pairs
    pred = transfer_fn(pairs.src, pairs.trg, pairs.src_points)
    out.update(protocol=_protocol(collection, transfer),
               threshold=collection.threshold_kind,
               num_pairs=len(pairs),
               num_keypoints=int(pairs.visible.sum()),
               pck=_curve(metrics.pck(pred, pairs.trg_points, pairs.visible, pairs.thresholds)),
               pck_per_pair=_curve(
                   metrics.pck_per_pair(pred, pairs.trg_points, pairs.visible, pairs.thresholds)))
  cycles = {}
  # Paper §4.4 scores every hop of a k-cycle within alpha_bbox times the max side of the
  # hop's target box: the object boxes where the collection has them (CUB's PCK itself uses
  # alpha * S), else the collection's own PCK length (PF-WILLOW: its keypoints' box).
  cycle_kind = 'bbox' if collection.bboxes is not None else collection.threshold_kind
  cycle_lengths = (thresholds_lib.thresholds(
      'bbox', collection.size, len(collection), bboxes=collection.bboxes)
                   if collection.bboxes is not None else collection.thresholds)
  for k in ks:
    try:
      tuples = metrics.sample_tuples(len(collection),
                                     k,
                                     e.cycle_tuples,
                                     groups=collection.groups,
                                     seed=config.seed)
    except ValueError as error:
      log.warning('No %d-cycles: %s', k, error)
      continue
    if collection.keypoints is not None:
      values = metrics.k_cycle_pck(transfer_fn, tuples, collection.keypoints, collection.visibility,
                                   cycle_lengths)
      visible = np.all(collection.visibility[tuples], axis=1).sum() * k
      cycles[str(k)] = dict(pck=_curve(values),
                            num_tuples=len(tuples),
                            num_keypoints=int(visible),
                            metric=f'{k}-CyPCK',
                            threshold=cycle_kind)
    else:
      values, counted = metrics.cycle_consistency(transfer_fn,
                                                  tuples,
                                                  collection.masks_or_ones(),
                                                  collection.size,
                                                  points=e.cycle_points)
      cycles[str(k)] = dict(pck=_curve(values),
                            num_tuples=len(tuples),
                            num_keypoints=counted,
                            metric=f'{k}-cycle self-consistency (alpha * S)')
  out['k_cycle'] = cycles
  return out


def flow_transfer(flows: jax.Array,
                  masks: np.ndarray | None,
                  chunk: int,
                  *,
                  method: str = 'nearest',
                  window: int | None = None,
                  temperature: float | None = None,
                  descriptors: tuple[np.ndarray, np.ndarray] | None = None,
                  refine_sigma: float = 1.0,
                  refine_temperature: float = 0.0) -> metrics.TransferFn:
  """ASIC's transfer through the canonical space (`transfer.transfer`), as a `TransferFn`;
  'refine' reads `descriptors` (`extract.match_descriptors`: grids, centres), its sigma in
  pixels."""
  masks = None if masks is None else jnp.asarray(masks)
  grids = centers = None
  if method == 'refine':
    if descriptors is None:
      raise ValueError("method 'refine' needs the backbone's descriptors")
    grids = matching.l2_normalize(jnp.asarray(descriptors[0]))
    centers = jnp.asarray(descriptors[1], jnp.float32)

  def fn(src, trg, points):
    return np.asarray(
        transfer_lib.transfer_pairs(flows,
                                    masks,
                                    jnp.asarray(src),
                                    jnp.asarray(trg),
                                    jnp.asarray(points, jnp.float32),
                                    chunk=chunk,
                                    method=method,
                                    window=window,
                                    temperature=temperature,
                                    grids=grids,
                                    centers=centers,
                                    refine_sigma=float(refine_sigma),
                                    refine_temperature=float(refine_temperature)))

  return fn


def config_transfer(config: ml_collections.ConfigDict, flows: jax.Array, collection,
                    masks: np.ndarray | None) -> metrics.TransferFn:
  """`flow_transfer` with the config's `eval.transfer` settings (the backbone's descriptors of
  `collection` for 'refine')."""
  e = config.eval
  descriptors = None
  if e.transfer == 'refine':
    descriptors = extract.match_descriptors(collection, config)
  return flow_transfer(flows,
                       masks,
                       e.chunk,
                       method=e.transfer,
                       window=int(e.soft_window),
                       temperature=float(e.soft_temperature),
                       descriptors=descriptors,
                       refine_sigma=refine_sigma_px(config, collection.size),
                       refine_temperature=float(e.refine_temperature))


def refine_sigma_px(config: ml_collections.ConfigDict, size: int) -> float:
  """`eval.refine_sigma` (a fraction of the image side S) in pixels of the S frame."""
  return float(config.eval.refine_sigma) * size


def markdown(results: dict, method: str) -> str:
  """The results as Markdown: the paper's headline columns, then the PCK curves."""
  lines = [f'# {method} on {results["collection"]}', '']
  if 'pck' in results:
    lines += [
        f'Protocol: {results["protocol"]}.', '', '| method | collection | PCK@0.10 | PCK@0.05 | ' +
        ' | '.join(f'{k}-CyPCK@0.10' for k in results['k_cycle']) + ' | pairs | keypoints |',
        '|---|---|---|---|' + '---|' * len(results['k_cycle']) + '---|---|',
        f'| {method} | {results["collection"]} | {100 * results["pck"]["0.10"]:.1f} | '
        f'{100 * results["pck"]["0.05"]:.1f} | ' +
        ' | '.join(f'{100 * c["pck"]["0.10"]:.1f}' for c in results['k_cycle'].values()) +
        f' | {results["num_pairs"]} | {results["num_keypoints"]} |', ''
    ]
  rows = [('PCK (pooled)', results.get('pck')), ('PCK (per pair)', results.get('pck_per_pair'))]
  rows += [(c['metric'], c['pck']) for c in results['k_cycle'].values()]
  alphas = [f'{a:.2f}' for a in metrics.ALPHAS]
  lines += [
      '| metric | ' + ' | '.join(f'α={a}' for a in alphas) + ' |', '|---|' + '---|' * len(alphas)
  ]
  lines += [
      f'| {name} | ' + ' | '.join(f'{100 * curve[a]:.1f}'
                                  for a in alphas) + ' |'
      for name, curve in rows
      if curve
  ]
  return '\n'.join(lines) + '\n'


def write(workdir: str | pathlib.Path, name: str, results: dict, method: str) -> pathlib.Path:
  """`WORKDIR/eval/<name>.json` and `.md` (by process 0 only, across hosts)."""
  folder = pathlib.Path(workdir) / 'eval'
  if not parallel.is_primary():
    return folder / f'{name}.json'
  safe_io.write_text_atomic(folder / f'{name}.json', json.dumps(results, indent=2))
  safe_io.write_text_atomic(folder / f'{name}.md', markdown(results, method))
  return folder / f'{name}.json'


def headline(results: dict, method: str = 'ASIC') -> str:
  """One line of the numbers that matter: PCK@0.10 and @0.05 and 4-CyPCK, with the protocol."""
  parts = []
  if 'pck' in results:
    parts.append(f'PCK@0.10 {100 * results["pck"]["0.10"]:.1f}, PCK@0.05 '
                 f'{100 * results["pck"]["0.05"]:.1f} ({results["threshold"]} thresholds, '
                 f'{results["num_pairs"]} pairs)')
  for k, cycle in results.get('k_cycle', {}).items():
    if k == '4' or len(results['k_cycle']) == 1:
      parts.append(f'{cycle["metric"]}@0.10 {100 * cycle["pck"]["0.10"]:.1f}')
  step = f' at step {results["checkpoint_step"]}' if 'checkpoint_step' in results else ''
  return f'{method} on {results["collection"]}{step}: ' + '; '.join(parts)


def evaluate(config: ml_collections.ConfigDict, collection, flows: jax.Array, workdir, *,
             step: int) -> dict:
  """Scores ASIC's transfer through `flows [N, S, S, 2]` (the run's at `step`, its collection's
  BatchNorm statistics, congealed when the config says: `congeal.collection_flows`) and writes
  `eval/results.{json,md}`."""
  e = config.eval
  transfer = NEAREST
  if e.transfer == 'soft':
    transfer = (f'a window soft-argmax (window {e.soft_window} px, temperature '
                f'{e.soft_temperature} px^2) around {NEAREST}')
  elif e.transfer == 'refine':
    transfer = (f'{NEAREST}, refined by the backbone descriptors\' cosine similarity to the '
                f'source point\'s: softmax(cos / {e.refine_temperature} - d^2 / (2 sigma^2)), '
                f'sigma = {e.refine_sigma} S, over cells within 3 sigma' if e.refine_temperature > 0
                else f'{NEAREST}, moved to the cell within {3 * e.refine_sigma} S whose backbone '
                'descriptor is most like the source point\'s')
  if e.congeal_steps > 0:
    transfer += (f'; through the congealed maps ({e.congeal_steps} steps, sigma '
                 f'{e.congeal_sigma} of the canonical side, temperature {e.congeal_temperature}, '
                 f'{e.congeal_grid} x {e.congeal_grid} template)')
  results = score(collection, config_transfer(config, flows, collection, collection.masks), config,
                  transfer)
  results.update(method='asic',
                 checkpoint_step=int(step),
                 config_hash=config_lib.config_hash(config),
                 preset=config.preset)
  write(workdir, 'results', results, 'ASIC')
  return results
