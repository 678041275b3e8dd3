"""Expands a config's `sweep(add, arg)` into runs; runs them in turn, or prints commands.

  python -m launch.sweep --config=configs/spair.py --root=runs            # 18 categories
  python -m launch.sweep --config=configs/cub.py:ablation --dry_run       # 3 classes x 6
  python -m launch.sweep --config=configs/pfwillow.py:presets --print_commands
  python -m launch.sweep --config=configs/tiny.py --config.train.num_steps=50

Each run gets its own workdir, `ROOT/<sweep>/<run>`: `<sweep>` is the config's name with
its arg's words and the command line's `--config.a.b=value` overrides (which apply to every
run), `<run>` is named from the run's own overrides (`data.category=cat`, `variant=no_kp`,
...). A `sweep.json` there records the overrides, the command, the config's hash and
whether the run finished. Runs go one after the other in this process on every local
device (compiled programs are shared through JAX's persistent cache in `ROOT/.jax_cache`);
a finished run is skipped and an unfinished one resumes from its last checkpoint, so an
interrupted sweep picks up where it stopped; a workdir holding a run of another config is
an error, never overwritten. `--print_commands` prints one `python -m asic_jax.main ...`
line per run for an external scheduler instead (`launch.aggregate` reads those runs'
variants from their workdir names).
"""

import argparse
import ast
import copy
import importlib.util
import json
import pathlib
import re
import shlex
import sys

import ml_collections

from asic_jax import config_lib, safe_io
from asic_jax.errors import UserError

# Keys of `add(...)` that are not config fields.
_SPECIAL = ('preset', 'variant')


def load_config_module(path: str | pathlib.Path):
  """The config file as a module (it defines `get_config(arg)` and maybe `sweep`)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise UserError(f'--config: no config file {path}')
  spec = importlib.util.spec_from_file_location(f'sweep_config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def set_value(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  """`config.<dotted> = value`, with a clear error for a field that does not exist."""
  *path, last = dotted.split('.')
  node = config
  for part in path:
    if part not in node:
      raise UserError(f'no config field {dotted!r}')
    node = node[part]
  if last not in node:
    raise UserError(f'no config field {dotted!r}')
  current = node[last]
  if isinstance(value, str) and not isinstance(current, str):
    value = _parse(value, type(current), dotted)
  node[last] = value


def _parse(text: str, kind: type, dotted: str):
  if kind is bool:
    if text.lower() in ('true', '1', 'yes'):
      return True
    if text.lower() in ('false', '0', 'no'):
      return False
    raise UserError(f'--config.{dotted}: expected true or false, got {text!r}')
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError) as e:
    raise UserError(f'--config.{dotted}: cannot read {text!r} as {kind.__name__}') from e
  return float(value) if kind is float and isinstance(value, int) else value


def expand(module, arg: str) -> list[dict]:
  """The runs of the config's sweep: one overrides dict per run (none: the config alone)."""
  runs = []
  if hasattr(module, 'sweep'):
    module.sweep(lambda **overrides: runs.append(overrides), arg)
  return runs or [{}]


def label(overrides: dict) -> str:
  """A workdir name from the overrides, `k=v,k=v`, in filename-safe characters (an
  ablation's variant names its zeroed weights, which are left out)."""
  shown = {
      k: v for k, v in overrides.items() if not ('variant' in overrides and k.startswith('loss.'))
  }
  text = ','.join(f'{k}={v}' for k, v in shown.items()) or 'default'
  return re.sub(r'[^A-Za-z0-9._=,+-]', '_', text)


def parse_label(name: str) -> dict[str, str]:
  """The overrides a `label` names, `k=v,k=v` -> {k: v} (values as text, characters
  `label` replaced stay replaced); {} for a name that is not a label."""
  pairs = [item.partition('=') for item in name.split(',')]
  return {k: v for k, eq, v in pairs if eq} if all(eq for _, eq, _ in pairs) else {}


def sweep_name(config_path: str, arg: str, base_overrides: dict[str, str]) -> str:
  """The sweep's folder: the config's name, its arg and the command line's overrides, so
  that sweeps of other collections or settings never share a workdir. Overrides of
  `config_lib.EVAL_SETTINGS` (`mode`, `eval.*`, `vis.*`, ...) do not define a run and are
  left out: `--config.mode=eval` evaluates the runs a training sweep left."""
  words, flags = config_lib.parse_arg(arg)
  name = '_'.join([pathlib.Path(config_path).stem] + words + sorted(flags))
  shown = {k: v for k, v in base_overrides.items() if not config_lib.is_eval_setting(k)}
  return name + (f',{label(shown)}' if shown else '')


def sweep_overrides(name: str) -> dict[str, str]:
  """The command-line overrides a `sweep_name` shows (after its first comma; the config's
  name and words hold none), {} for a folder without them."""
  return parse_label(name.partition(',')[2])


def run_arg(arg: str, overrides: dict) -> str:
  """The config arg of one run: the sweep's words, with the run's preset if it names one."""
  words, flags = config_lib.parse_arg(arg)
  preset = overrides.get('preset')
  if preset is not None:
    if preset not in config_lib.PRESETS:
      raise UserError(f'sweep: unknown preset {preset!r}')
    flags = (flags - set(config_lib.PRESETS)) | {preset}
  return ','.join(words + sorted(flags - {'paper'} - set(config_lib.SWEEPS)))


def run_config(module, arg: str, base_overrides: dict[str, str],
               overrides: dict) -> ml_collections.ConfigDict:
  """The config of one run: `get_config(arg)`, the command line's overrides, the run's."""
  config = module.get_config(run_arg(arg, overrides))
  for dotted, text in base_overrides.items():
    set_value(config, dotted, text)
  for dotted, value in overrides.items():
    if dotted not in _SPECIAL:
      set_value(config, dotted, value)
  return config


def command(config_path: str, arg: str, overrides: dict, base_overrides: dict,
            workdir: pathlib.Path) -> str:
  """The `python -m asic_jax.main` line of one run."""
  spec = config_path + (f':{run_arg(arg, overrides)}' if run_arg(arg, overrides) else '')
  parts = ['python', '-m', 'asic_jax.main', f'--config={spec}', f'--workdir={workdir}']
  values = dict(base_overrides, **{k: v for k, v in overrides.items() if k not in _SPECIAL})
  parts += [f'--config.{k}={v}' for k, v in values.items()]
  return ' '.join(shlex.quote(p) for p in parts)


def _split(argv: list[str]) -> tuple[list[str], dict[str, str]]:
  """Separates `--config.a.b=v` overrides from the other arguments."""
  rest, overrides = [], {}
  for item in argv:
    match = re.fullmatch(r'--config\.([\w.]+)=(.*)', item)
    if match:
      overrides[match.group(1)] = match.group(2)
    else:
      rest.append(item)
  return rest, overrides


def main(argv: list[str] | None = None) -> list[dict]:
  rest, base_overrides = _split(sys.argv[1:] if argv is None else argv)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', required=True, help='configs/<name>.py[:arg]')
  parser.add_argument('--root', default='runs', help='the sweep writes ROOT/<config>/<run>/')
  parser.add_argument('--dry_run', action='store_true', help='list the runs, run nothing')
  parser.add_argument('--print_commands',
                      action='store_true',
                      help='print one command line per run for an external scheduler')
  args = parser.parse_args(rest)
  config_path, _, arg = args.config.partition(':')
  module = load_config_module(config_path)
  runs = expand(module, arg)
  root = pathlib.Path(args.root) / sweep_name(config_path, arg, base_overrides)
  plan = []
  for overrides in runs:
    workdir = root / label(overrides)
    config = run_config(module, arg, base_overrides, overrides)  # validates every run first
    plan.append(
        dict(workdir=str(workdir),
             overrides=overrides,
             config=config,
             command=command(config_path, arg, overrides, base_overrides, workdir)))
  if len({p['workdir'] for p in plan}) != len(plan):
    raise UserError('sweep: two runs map to the same workdir; give them distinct overrides')
  if args.dry_run or args.print_commands:
    print(f'{len(plan)} runs under {root}')
    for p in plan:
      print(p['command'] if args.print_commands else f"{p['workdir']}  {p['overrides']}")
    return plan
  _run_all(plan, root)
  return plan


def _run_all(plan: list[dict], root: pathlib.Path) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  from asic_jax import main, restore  # pylint: disable=import-outside-toplevel
  main.setup_process(plan[0]['config'])  # the same for every run: the command line's
  root.mkdir(parents=True, exist_ok=True)
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update('jax_compilation_cache_dir', str(root / '.jax_cache'))
  for index, p in enumerate(plan, 1):
    workdir, config = pathlib.Path(p['workdir']), p['config']
    record = dict(overrides=p['overrides'],
                  command=p['command'],
                  config_hash=config_lib.config_hash(config),
                  finished=False)
    marker = workdir / 'sweep.json'
    if marker.is_file():
      before = json.loads(marker.read_text())
      if before.get('config_hash') != record['config_hash']:
        # Another config's record: the same run only if it differs in what a resume may change
        # (more steps, other logging), as train itself would resume it.
        restore.check_same_run(config,
                               workdir,
                               remedy='Remove it or give another --root',
                               strict=True)
      elif before.get('finished') and config.mode == 'train':
        print(f'[{index}/{len(plan)}] {workdir}: done, skipped', flush=True)
        continue
    print(f'[{index}/{len(plan)}] {workdir}', flush=True)
    if config.mode != 'train':  # eval, visualize, ... of the run there: its record stays
      main.run(copy.deepcopy(config), workdir)
      continue
    workdir.mkdir(parents=True, exist_ok=True)
    safe_io.write_text_atomic(marker, json.dumps(record, indent=2))
    main.run(copy.deepcopy(config), workdir)
    safe_io.write_text_atomic(marker, json.dumps(dict(record, finished=True), indent=2))


if __name__ == '__main__':
  from asic_jax import interrupts  # pylint: disable=ungrouped-imports
  from asic_jax.errors import Interrupted  # pylint: disable=ungrouped-imports
  # Ctrl-C and SIGTERM as on the main command line: a training run saves the step it stopped
  # at; anything else stops at once (`asic_jax.interrupts`).
  interrupts.install('the sweep stopped; rerun it to carry on (finished runs are skipped, an '
                     'interrupted one resumes)')
  try:
    main()
  except BrokenPipeError:  # the listing piped into `head`
    sys.exit(0)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except Interrupted as e:
    interrupts.exit_at_once(f'{e} (rerun the sweep: finished runs are skipped)', e.code)
