"""A run's saved config read back: over today's defaults, with a later command line's
evaluation settings, and compared with another config.

Every checkpoint holds the config of its run (`asic_jax.checkpoint`). A job on a trained run
(`mode=eval`, `visualize`, `map`, the Python API) takes the model and data settings from it,
and only `config_lib.EVAL_SETTINGS` from its own command line (`overlay`); a resumed or swept
training run may differ from it only in `RESUME_SETTINGS` (`changed_settings`; the same-run
check that reads a workdir is `restore.check_same_run`).
"""

import json

import ml_collections

from asic_jax import config_lib

# What a resumed run may change besides `EVAL_SETTINGS`: how long it runs and how it logs,
# checkpoints and spreads over devices. Any other difference from the checkpoint's config is
# another run, refused in that workdir (`changed_settings`).
RESUME_SETTINGS = config_lib.EVAL_SETTINGS + ('train.num_steps', 'train.log_every', 'checkpoint',
                                              'parallel', 'distributed', 'coordinator_address',
                                              'num_processes', 'process_id',
                                              'features.batch_size', 'features.query_chunk')


def from_saved(saved: dict) -> ml_collections.ConfigDict:
  """A saved config (its JSON) over `base_config()`'s defaults, so that a run saved before a
  key existed reads with that key at its default; every saved value is kept as saved."""
  config = config_lib.base_config()

  def merge(node, values):
    for key, value in values.items():
      if isinstance(value, dict) and key in node and isinstance(node[key], ml_collections.ConfigDict):
        merge(node[key], value)
      else:
        with node.ignore_type():
          node[key] = value

  merge(config, dict(saved))
  return config


def overlay(cli: ml_collections.ConfigDict | None,
            config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` (a saved one) with the command line's evaluation settings (`cli`; None keeps
  the saved ones), in place."""
  for dotted in config_lib.EVAL_SETTINGS if cli is not None else ():
    src, last = config_lib.parent(cli, dotted)
    dst, _ = config_lib.parent(config, dotted)
    if src is not None and dst is not None and last in src:
      dst[last] = src[last]
  return config


def changed_settings(saved: ml_collections.ConfigDict,
                     current: ml_collections.ConfigDict) -> list[str]:
  """`key: saved -> current` for every setting outside `RESUME_SETTINGS` that differs."""

  def flat(config):
    out = {}

    def walk(node, prefix):
      for key, value in node.items():
        dotted = f'{prefix}{key}'
        if isinstance(value, dict):
          walk(value, dotted + '.')
        else:
          out[dotted] = value

    walk(json.loads(config.to_json()), '')
    return out

  a, b = flat(saved), flat(current)
  return [
      f'{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in sorted(set(a) | set(b))
      if a.get(k) != b.get(k) and not config_lib.within(k, RESUME_SETTINGS)
  ]
