"""The import graph flows one way: data (images and ground truth) never imports the
correspondence extraction, training, evaluation or the jobs built on them."""

import ast
import pathlib

import asic_jax

PACKAGE = pathlib.Path(asic_jax.__file__).parent
# What asic_jax.data may import from the package: itself, pure ops, errors and file writing.
ALLOWED = ('asic_jax.data', 'asic_jax.ops', 'asic_jax.errors', 'asic_jax.files')


def _imports(path: pathlib.Path) -> set[str]:
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      found.update(f'{node.module}.{alias.name}' for alias in node.names)
  return {name for name in found if name.startswith('asic_jax')}


def test_data_imports_nothing_downstream():
  modules = sorted((PACKAGE / 'data').glob('*.py'))
  assert len(modules) > 8
  for path in modules:
    bad = sorted(n for n in _imports(path) if not n.startswith(ALLOWED))
    assert not bad, f'{path.name} imports {bad}'


def test_the_checker_sees_imports():
  """The test above would catch a violation: the extraction module itself imports data."""
  assert any(n.startswith('asic_jax.data') for n in _imports(PACKAGE / 'correspondences' /
                                                                'extract.py'))
  assert 'asic_jax.correspondences.extract' in _imports(PACKAGE / 'prepare.py')
