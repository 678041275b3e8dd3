"""The import graph of the whole package flows one way: no cycle, and a fixed rank order.

Every module is read with `ast` (imports inside functions count too: they run as soon as the
function does). A unit is a top-level module (`asic_jax.train`) or a sub-package
(`asic_jax.data`, whose modules may import each other, cycles aside). A unit imports only units
of lower rank; `RANKS` below is the layout, bottom up, and a new module must be placed in it.
"""

import ast
import pathlib

import pytest

import asic_jax

PACKAGE = pathlib.Path(asic_jax.__file__).parent

# Bottom up. A unit imports only units of strictly lower rank.
RANKS = (
    ('errors',),  # the exception types every layer raises
    # Leaves: settings, writing files, devices, the optimizer, pure array maths.
    ('config_lib', 'safe_io', 'parallel', 'optim', 'ops'),
    # A saved run's settings; the workdir lock, the metrics log, plots; images and ground
    # truth; networks; loss terms.
    ('saved_config', 'lock', 'logs', 'drawing', 'data', 'models', 'losses'),
    # Checkpoints; Ctrl-C; pseudo-matches, masks and parts; the train state, the flows of a
    # trained model, the training objective; the HTML report (reads results files only).
    ('checkpoint', 'interrupts', 'correspondences', 'train_state', 'flows', 'objective', 'report'),
    # Scoring a transfer; the collection a run trains on (data + correspondences).
    ('evaluation', 'training_collection'),
    # A trained run read back; edit propagation; a config checked against every module's
    # choices; the flows congealed with the backbone's descriptors (flows, correspondences and
    # the transfer's readers).
    ('restore', 'edits', 'validate', 'congeal'),
    ('train', 'figures'),  # the training loop; the figures of a trained run
    ('api',),  # `asic_jax.load`: a trained run as an object
    ('explore',),  # the report's explorer page (through the API)
    ('jobs',),  # one `run(config, workdir)` per mode
    ('main', '__init__'),  # the command line; `asic_jax.load`
)


def rank_of(ranks=RANKS) -> dict[str, int]:
  return {unit: r for r, units in enumerate(ranks) for unit in units}


def module_name(path: pathlib.Path, root: pathlib.Path = PACKAGE) -> str:
  """'asic_jax.data.images' for `asic_jax/data/images.py`; a package is its `__init__`'s."""
  parts = (root.name,) + path.relative_to(root).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports(path: pathlib.Path, modules: set[str], root: pathlib.Path = PACKAGE) -> set[str]:
  """The package's modules that the file at `path` imports (relative imports resolved;
  `from p import name` is the module `p.name` when that is a module, else `p`)."""
  name = module_name(path, root)
  package = name if path.name == '__init__.py' else name.rpartition('.')[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(anchor + ([base] if base else []))
      for alias in node.names:
        full = f'{base}.{alias.name}'
        found.add(full if full in modules else base)
  return {m for m in found if m in modules and m != name}


def package_graph(root: pathlib.Path = PACKAGE) -> dict[str, set[str]]:
  """{module: the package's modules it imports} for every `.py` file under `root`."""
  paths = sorted(root.rglob('*.py'))
  modules = {module_name(p, root) for p in paths}
  return {module_name(p, root): imports(p, modules, root) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """A cycle `[a, b, ..., a]` of the directed graph, or None (a depth-first search)."""
  state = {}  # absent: unseen; 1: on the current path; 2: done

  def visit(node, path):
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt, path)
        if found:
          return found
    state[node] = 2
    path.pop()
    return None

  for start in sorted(graph):
    if start not in state:
      found = visit(start, [])
      if found:
        return found
  return None


def unit(module: str) -> str:
  """The unit of a module: `asic_jax.data.images` -> 'data'; `asic_jax` -> '__init__'."""
  parts = module.split('.')[1:]
  return parts[0] if parts else '__init__'


def rank_violations(graph: dict[str, set[str]], ranks=RANKS) -> list[str]:
  """'a imports b' for every import of a unit of the same or a higher rank (a unit's own
  modules excepted)."""
  rank = rank_of(ranks)
  return sorted(
      f'{m} (rank {rank[unit(m)]}) imports {d} (rank {rank[unit(d)]})' for m, deps in graph.items()
      for d in deps if unit(d) != unit(m) and rank[unit(d)] >= rank[unit(m)])


@pytest.fixture(scope='module')
def graph():
  return package_graph()


def test_there_is_no_import_cycle(graph):
  assert len(graph) > 60 and sum(map(len, graph.values())) > 200  # it reads the package
  assert find_cycle(graph) is None, ' -> '.join(find_cycle(graph))


def test_every_unit_is_ranked_once(graph):
  placed = [u for units in RANKS for u in units]
  assert len(placed) == len(set(placed))
  assert {unit(m) for m in graph} == set(placed)


def test_units_import_only_lower_ranks(graph):
  assert rank_violations(graph) == []


def test_config_lib_imports_nothing_but_the_exception_types(graph):
  assert graph['asic_jax.config_lib'] <= {'asic_jax.errors'}
  assert graph['asic_jax.errors'] == set()


def test_data_imports_no_correspondence_training_or_evaluation_code(graph):
  for module, deps in graph.items():
    if unit(module) == 'data':
      assert {unit(d) for d in deps} <= {'data', 'ops', 'errors'}, module


def test_the_checker_finds_a_planted_cycle():
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == ['a', 'b', 'c', 'a']
  assert find_cycle({'a': {'a'}}) == ['a', 'a']
  # The cycle of five, as it was.
  five = {
      'config_lib': {'baseline'},
      'baseline': {'eval_run'},
      'eval_run': {'restore'},
      'restore': {'checkpoint'},
      'checkpoint': {'config_lib'},
  }
  assert len(find_cycle(five)) == 6


def test_the_checker_finds_a_planted_rank_violation():
  ranks = (('errors',), ('data',), ('train',))
  graph = {
      'asic_jax.errors': set(),
      'asic_jax.data.images': {'asic_jax.errors', 'asic_jax.data.collection'},
      'asic_jax.data.collection': set(),
      'asic_jax.train': {'asic_jax.data.images'},
  }
  assert rank_violations(graph, ranks) == []
  graph['asic_jax.data.images'].add('asic_jax.train')
  assert rank_violations(
      graph, ranks) == ['asic_jax.data.images (rank 1) imports asic_jax.train (rank 2)']


def test_the_checker_reads_every_kind_of_import(tmp_path):
  root = tmp_path / 'asic_jax'
  (root / 'data').mkdir(parents=True)
  for name in ('__init__.py', 'errors.py', 'train.py', 'data/__init__.py', 'data/images.py'):
    (root / name).write_text('')
  (root / 'data' / 'folder.py').write_text('from . import images\n'
                                           'from ..errors import UserError\n'
                                           'def f():\n'
                                           '  import asic_jax.train\n')
  (root / 'train.py').write_text('from asic_jax.data import folder as folder_lib\n')
  graph = package_graph(root)
  assert graph['asic_jax.data.folder'] == {
      'asic_jax.data.images', 'asic_jax.errors', 'asic_jax.train'
  }
  assert find_cycle(graph) == ['asic_jax.data.folder', 'asic_jax.train', 'asic_jax.data.folder']
