"""Evaluation: ASIC from an Orbax checkpoint (`mode=eval`) under each dataset's protocol,
written to `WORKDIR/eval/`; `score` is the protocol the baselines (`asic_jax.baseline`) share.

`eval/results.json` (ASIC) and `eval/baseline_*.json` (the baselines) hold every number with its
protocol: PCK@alpha for alpha = 0.10 ... 0.01, pooled over keypoints and averaged per
image pair; k-CyPCK for k = 2, 3, 4 (or the cycle self-consistency of foreground points
when the collection has no keypoints); `num_pairs`, `num_keypoints`, the checkpoint step
and a hash of the training config. `results.md` / `baseline.md` hold the same as tables.
"""

import hashlib
import json
import logging
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asic_jax import checkpoint, config_lib, evaluate, optim, parallel
from asic_jax import state as state_lib
from asic_jax.data import collection as collection_lib
from asic_jax.data import loaders
from asic_jax.errors import UserError

log = logging.getLogger(__name__)

_EVAL_OVERRIDES = config_lib.EVAL_SETTINGS


def _parent(tree, dotted: str):
  """(the mapping holding `dotted`'s last part, that part); None when a level is missing."""
  *path, last = dotted.split('.')
  for part in path:
    if part not in tree:
      return None, last
    tree = tree[part]
  return tree, last


def config_hash(config: ml_collections.ConfigDict) -> str:
  """A short hash identifying a training run: its config without the settings an
  evaluation may change (`_EVAL_OVERRIDES`), as JSON with sorted keys."""
  settings = json.loads(config.to_json())
  for dotted in _EVAL_OVERRIDES:
    node, last = _parent(settings, dotted)
    if node is not None:
      node.pop(last, None)
  text = json.dumps(settings, sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def _protocol(collection: collection_lib.Collection) -> str:
  kind = collection.threshold_kind
  length = {
      'bbox': "max side of the target's object box",
      'img': 'the image side S',
      'kp_bbox': "max side of the tight box around the target's annotated keypoints"
  }[kind]
  return (f'PCK@alpha: ||pred - gt|| < alpha * L, L = {length} ({kind}, S = {collection.size} '
          'px frame), pooled over keypoints; transfer = nearest canonical coordinate among '
          'target pixels with mask >= 0.1')


def _curve(values: np.ndarray) -> dict[str, float]:
  return {f'{a:.2f}': float(v) for a, v in zip(evaluate.ALPHAS, values)}


def score(collection: collection_lib.Collection, transfer_fn: evaluate.TransferFn,
          config: ml_collections.ConfigDict) -> dict:
  """Every metric of `transfer_fn` on the collection (pairs in the S frame)."""
  e = config.eval
  out = dict(collection=collection.name, size=collection.size, alphas=list(evaluate.ALPHAS))
  ks = tuple(int(k) for k in e.cycle_ks)
  if collection.eval_pairs is not None:
    pairs = collection.eval_pairs
    pred = transfer_fn(pairs.src, pairs.trg, pairs.src_points)
    out.update(protocol=_protocol(collection),
               threshold=collection.threshold_kind,
               num_pairs=len(pairs),
               num_keypoints=int(pairs.visible.sum()),
               pck=_curve(evaluate.pck(pred, pairs.trg_points, pairs.visible, pairs.thresholds)),
               pck_per_pair=_curve(
                   evaluate.pck_per_pair(pred, pairs.trg_points, pairs.visible, pairs.thresholds)))
  cycles = {}
  for k in ks:
    try:
      tuples = evaluate.sample_tuples(len(collection),
                                      k,
                                      e.cycle_tuples,
                                      groups=collection.groups,
                                      seed=config.seed)
    except ValueError as error:
      log.warning('No %d-cycles: %s', k, error)
      continue
    if collection.keypoints is not None:
      values = evaluate.k_cycle_pck(transfer_fn, tuples, collection.keypoints,
                                    collection.visibility, collection.thresholds)
      visible = np.all(collection.visibility[tuples], axis=1).sum() * k
      cycles[str(k)] = dict(pck=_curve(values),
                            num_tuples=len(tuples),
                            num_keypoints=int(visible),
                            metric=f'{k}-CyPCK')
    else:
      masks = collection.masks if collection.masks is not None else np.ones(
          collection.images.shape[:3], np.float32)
      values, counted = evaluate.cycle_consistency(transfer_fn,
                                                   tuples,
                                                   masks,
                                                   collection.size,
                                                   points=e.cycle_points)
      cycles[str(k)] = dict(pck=_curve(values),
                            num_tuples=len(tuples),
                            num_keypoints=counted,
                            metric=f'{k}-cycle self-consistency (alpha * S)')
  out['k_cycle'] = cycles
  return out


def flow_transfer(flows: jax.Array, masks: np.ndarray | None, chunk: int) -> evaluate.TransferFn:
  """ASIC's transfer through the canonical space, as a `TransferFn`."""
  masks = None if masks is None else jnp.asarray(masks)

  def fn(src, trg, points):
    return np.asarray(
        evaluate.transfer_pairs(flows,
                                masks,
                                jnp.asarray(src),
                                jnp.asarray(trg),
                                jnp.asarray(points, jnp.float32),
                                chunk=chunk))

  return fn


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
  alphas = [f'{a:.2f}' for a in evaluate.ALPHAS]
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
  folder.mkdir(parents=True, exist_ok=True)
  (folder / f'{name}.json').write_text(json.dumps(results, indent=2))
  (folder / f'{name}.md').write_text(markdown(results, method))
  return folder / f'{name}.json'


def training_config(cli: ml_collections.ConfigDict, checkpointer: checkpoint.Checkpointer,
                    step: int | None) -> ml_collections.ConfigDict:
  """The config saved with the checkpoint, with the command line's evaluation settings."""
  config = checkpointer.restore_config(step)
  for dotted in _EVAL_OVERRIDES:
    src, last = _parent(cli, dotted)
    dst, _ = _parent(config, dotted)
    if src is not None and dst is not None and last in src:
      dst[last] = src[last]
  return config


def restore_run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
  """The trained run in `workdir` at `config.eval.step` (0: the latest checkpoint).

  Returns:
    `(trained config, collection, train state, step)`: the config saved with the
    checkpoint with this command line's evaluation settings (`training_config`).
  """
  checkpointer = checkpoint.Checkpointer(workdir, read_only=True)
  saved = checkpointer.all_steps()
  if not saved:
    raise UserError(f'no checkpoint in {checkpointer.directory}; train first '
                    '(--config.mode=train)')
  step = config.eval.step or max(saved)
  if step not in saved:
    raise UserError(f'config.eval.step={step}: no such checkpoint in {checkpointer.directory}; '
                    f'saved steps: {", ".join(map(str, sorted(saved)))}')
  trained = training_config(config, checkpointer, step)
  collection = loaders.load(trained)
  template = state_lib.init_state(trained, optim.make_optimizer(trained), collection.size)
  step, state = checkpointer.restore(template, step)
  return trained, collection, state, step


def evaluate_run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """`config.mode='eval'`: ASIC from the latest (or `eval.step`) checkpoint in `workdir`."""
  trained, collection, state, step = restore_run(config, workdir)
  return evaluate_state(trained, state, collection, workdir, step=step)


def evaluate_state(config: ml_collections.ConfigDict,
                   state,
                   collection,
                   workdir,
                   *,
                   step: int,
                   flows: jax.Array | None = None) -> dict:
  """Scores a train state on its collection and writes `eval/results.{json,md}`."""
  if flows is None:
    flows = state_lib.collection_flows(config, state, collection.images)
  results = score(collection, flow_transfer(flows, collection.masks, config.eval.chunk), config)
  results.update(method='asic',
                 checkpoint_step=int(step),
                 config_hash=config_hash(config),
                 preset=config.preset)
  write(workdir, 'results', results, 'ASIC')
  return results
