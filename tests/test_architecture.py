"""Architecture rules of medinv/, checked on the source with ast (nothing is imported).

- every module has at most MAX_MODULE_LINES lines, every function or method (nested ones
  too) at most MAX_FUNCTION_LINES (`end_lineno - lineno + 1`, decorators not counted);
- imports flow one way: each module sits in one layer of LAYERS and imports (at module
  level, inside functions, or through importlib with a literal name) only modules of its own
  or a lower layer;
- a few named modules never import certain others, directly or through any chain
  (FORBIDDEN).

A new module must be placed in LAYERS; the test says so when one is missing. The checker
itself is tested on a planted package with one violation of each kind.
"""
from __future__ import annotations

import ast
import dataclasses
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Lowest layer first. A pattern is a module name, `pkg.*` (every submodule of pkg, at any
# depth) or a name with `*` inside one dotted part (`medinv.*_figures`).
ATTACK_PACKAGES = ('attribute', 'inversion', 'membership')
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('core', ('medinv', 'medinv.core', 'medinv.core.*')),
    ('data', ('medinv.data', 'medinv.data.*')),
    ('models', ('medinv.models', 'medinv.models.*')),
    ('metrics', ('medinv.metrics', 'medinv.metrics.*')),
    ('defenses', ('medinv.defenses', 'medinv.defenses.*')),
    ('training', ('medinv.training', 'medinv.training.*')),
    ('attacks', tuple(f'medinv.{p}{s}' for p in ATTACK_PACKAGES for s in ('', '.*'))),
    ('api', ('medinv.api',)),
    ('study', ('medinv.study', 'medinv.study.*')),
)

# (importer patterns, forbidden target patterns): not even through other modules.
FORBIDDEN: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (('medinv.training.*', 'medinv.core.*'), ('medinv.study.*',)),
    # The attacks themselves need no trainer: only experiments train targets.
    (('medinv.inversion.attacks', 'medinv.inversion.reconstruct', 'medinv.membership.attacks',
      'medinv.attribute.attacks', 'medinv.attribute.inference'), ('medinv.training.trainer',)),
) + tuple(  # An attack package never reaches into another.
    ((f'medinv.{p}', f'medinv.{p}.*'),
     tuple(f'medinv.{q}{s}' for q in ATTACK_PACKAGES if q != p for s in ('', '.*')))
    for p in ATTACK_PACKAGES)


# ------------------------------------------------------------------------------ the checker

def _pattern_regex(pattern: str) -> re.Pattern:
  if pattern.endswith('.*'):
    return re.compile(re.escape(pattern[:-2]) + r'\..+')
  return re.compile('[^.]*'.join(re.escape(part) for part in pattern.split('*')))


def matches(module: str, patterns) -> bool:
  return any(_pattern_regex(p).fullmatch(module) for p in patterns)


@dataclasses.dataclass(repr=False)
class Module:
  name: str        # medinv.data.mias
  path: str        # medinv/data/mias.py (relative to the source root)
  tree: ast.Module
  num_lines: int

  def __repr__(self):
    return f'Module({self.name})'


def find_modules(source_root: str, package: str = 'medinv') -> dict[str, Module]:
  """Every .py file under source_root/package, by dotted module name."""
  modules = {}
  for folder, _, files in os.walk(os.path.join(source_root, package)):
    for filename in sorted(files):
      if not filename.endswith('.py'):
        continue
      path = os.path.join(folder, filename)
      relative = os.path.relpath(path, source_root)
      parts = relative[:-3].split(os.sep)
      if parts[-1] == '__init__':
        parts = parts[:-1]
      with open(path, encoding='utf-8') as f:
        text = f.read()
      modules['.'.join(parts)] = Module('.'.join(parts), relative, ast.parse(text, relative),
                                        len(text.splitlines()))
  return modules


def _is_package(module: Module) -> bool:
  return module.path.endswith('__init__.py')


def _imported_names(module: Module):
  """(line, dotted name) of everything the module imports, wherever the import statement is."""
  for node in ast.walk(module.tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      if node.level:  # Relative: resolve against the importing module's package.
        package = module.name.split('.')
        if not _is_package(module):
          package = package[:-1]
        package = package[:len(package) - node.level + 1]
        base = '.'.join(package + ([node.module] if node.module else []))
      else:
        base = node.module or ''
      for alias in node.names:
        yield node.lineno, f'{base}.{alias.name}'  # A module or a name in module `base`.
    elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str) and (
              (isinstance(node.func, ast.Attribute) and node.func.attr == 'import_module') or
              (isinstance(node.func, ast.Name) and node.func.id in ('import_module',
                                                                    '__import__')))):
      yield node.lineno, node.args[0].value


def imports(module: Module, modules: dict[str, Module]) -> list[tuple[int, str]]:
  """(line, module name) of every module of `modules` that `module` imports."""
  found = []
  for line, name in _imported_names(module):
    while name and name not in modules:  # `from medinv.data import DataError` -> medinv.data
      name = name.rpartition('.')[0]
    if name and name != module.name:
      found.append((line, name))
  return found


def layer_of(name: str, layers=LAYERS) -> int:
  """Index of the layer whose patterns match `name`; a clear error if none or several do."""
  found = [i for i, (_, patterns) in enumerate(layers) if matches(name, patterns)]
  if len(found) == 1:
    return found[0]
  names = [layer for layer, _ in layers]
  if not found:
    raise LookupError(
        f'{name} is in no layer of LAYERS in tests/test_architecture.py: add it to the layer '
        f'it belongs to (lowest first: {", ".join(names)}); it may import only modules of its '
        f'own and lower layers')
  raise LookupError(f'{name} matches several layers of LAYERS ({", ".join(names[i] for i in found)}'
                    f'); make the patterns of tests/test_architecture.py place it once')


def size_violations(modules: dict[str, Module], max_module_lines=MAX_MODULE_LINES,
                    max_function_lines=MAX_FUNCTION_LINES) -> tuple[list[str], list[str]]:
  """(modules over the line limit, functions over theirs), as readable lines."""
  long_modules = [f'{m.path}: {m.num_lines} lines (at most {max_module_lines})'
                  for m in modules.values() if m.num_lines > max_module_lines]
  long_functions = []
  for m in modules.values():
    for node in ast.walk(m.tree):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > max_function_lines:
          long_functions.append(f'{m.path}:{node.lineno} {node.name}: {length} lines '
                                f'(at most {max_function_lines})')
  return sorted(long_modules), sorted(long_functions)


def layering_violations(modules: dict[str, Module], layers=LAYERS) -> list[str]:
  """Unplaced modules and imports from a lower layer to a higher one."""
  problems, placed = [], {}
  for name in sorted(modules):
    try:
      placed[name] = layer_of(name, layers)
    except LookupError as e:
      problems.append(f'{modules[name].path}: {e}')
  for name, layer in placed.items():
    for line, target in imports(modules[name], modules):
      if target in placed and placed[target] > layer:
        problems.append(
            f'{modules[name].path}:{line}: {name} (layer {layers[layer][0]}) imports '
            f'{target} (higher layer {layers[placed[target]][0]})')
  return problems


def forbidden_violations(modules: dict[str, Module], rules=FORBIDDEN) -> list[str]:
  """Modules that reach a forbidden module, directly or through a chain of imports."""
  graph = {name: sorted({t for _, t in imports(m, modules)}) for name, m in modules.items()}
  problems = []
  for importers, targets in rules:
    for start in sorted(n for n in modules if matches(n, importers)):
      chains, seen = [[start]], {start}
      while chains:  # Breadth first: the shortest chain to each reachable module.
        chain = chains.pop(0)
        for target in graph[chain[-1]]:
          if target in seen:
            continue
          seen.add(target)
          if matches(target, targets):
            problems.append(f'{start} imports {target}: ' + ' -> '.join(chain + [target]))
          chains.append(chain + [target])
  return problems


def import_cycles(modules: dict[str, Module]) -> list[list[str]]:
  """Every group of modules that import each other in a circle (strongly connected
  components of more than one module, or a module importing itself), each sorted.

  A package's import of its own submodules counts (registering built-ins from an __init__
  is fine only while the submodules do not import the package back)."""
  graph = {name: sorted({t for _, t in imports(m, modules)}) for name, m in modules.items()}
  index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

  def visit(node):  # Tarjan's algorithm.
    index[node] = low[node] = counter[0]
    counter[0] += 1
    stack.append(node)
    on_stack.add(node)
    for target in graph[node]:
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1 or node in graph[node]:
        cycles.append(sorted(component))

  for name in sorted(graph):
    if name not in index:
      visit(name)
  return sorted(cycles)


# ---------------------------------------------------------------------------- the checks

@pytest.fixture(scope='module')
def medinv_modules():
  modules = find_modules(ROOT)
  # Found the package.
  assert 'medinv.training.trainer' in modules and 'medinv.data.mias' in modules
  return modules


def test_modules_are_at_most_400_lines(medinv_modules):
  long_modules, _ = size_violations(medinv_modules)
  assert not long_modules, 'split these modules along their seams:\n' + '\n'.join(long_modules)


def test_functions_are_at_most_60_lines(medinv_modules):
  _, long_functions = size_violations(medinv_modules)
  assert not long_functions, 'split these functions:\n' + '\n'.join(long_functions)


def test_every_module_is_placed_and_imports_flow_one_way(medinv_modules):
  problems = layering_violations(medinv_modules)
  assert not problems, '\n'.join(problems)


def test_no_import_cycles(medinv_modules):
  cycles = import_cycles(medinv_modules)
  assert not cycles, 'modules importing each other in a circle:\n' + '\n'.join(
      ' <-> '.join(c) for c in cycles)


def test_forbidden_imports_not_even_indirectly(medinv_modules):
  problems = forbidden_violations(medinv_modules)
  assert not problems, '\n'.join(problems)


# -------------------------------------------------------- the checker on a planted package

PLANTED = {
    'pkg/__init__.py': '',
    'pkg/base.py': 'import os\n\ndef helper():\n  return os.sep\n',
    'pkg/low.py': ('from pkg import base\n\n\ndef late():\n'
                   '  from pkg import high  # inside a function: still an import\n'
                   '  return high\n'),
    'pkg/high.py': 'from . import low\nfrom .sub.leaf import VALUE\n' + '\n' * 400,
    'pkg/sub/__init__.py': '',
    'pkg/sub/leaf.py': ('import importlib\nVALUE = 1\n\n\ndef long():\n' +
                        '  x = 1\n' * 60 + '  return importlib.import_module("pkg.high")\n'),
    'pkg/stray.py': 'from pkg import base\n',
}
PLANTED_LAYERS = (('bottom', ('pkg', 'pkg.base')), ('middle', ('pkg.low', 'pkg.sub.*')),
                  ('top', ('pkg.high', 'pkg.sub', 'pkg.h*')))


@pytest.fixture
def planted(tmp_path):
  for path, text in PLANTED.items():
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(text)
  return find_modules(str(tmp_path), 'pkg')


def test_checker_finds_planted_size_violations(planted):
  long_modules, long_functions = size_violations(planted)
  assert long_modules == [f'{os.path.join("pkg", "high.py")}: 402 lines (at most 400)']
  assert long_functions == [f'{os.path.join("pkg", "sub", "leaf.py")}:5 long: 62 lines '
                            '(at most 60)']
  _, at_limit = size_violations(planted, max_function_lines=62)
  assert at_limit == []


def test_checker_finds_planted_layer_violations(planted):
  assert {name: [t for _, t in imports(m, planted)] for name, m in planted.items()} == {
      'pkg': [], 'pkg.base': [], 'pkg.low': ['pkg.base', 'pkg.high'],
      'pkg.high': ['pkg.low', 'pkg.sub.leaf'], 'pkg.sub': [],
      'pkg.sub.leaf': ['pkg.high'], 'pkg.stray': ['pkg.base']}
  problems = layering_violations(planted, PLANTED_LAYERS)
  assert len(problems) == 3, problems
  assert any('stray.py: pkg.stray is in no layer of LAYERS' in p and 'add it to the layer'
             in p for p in problems)
  assert any(p.endswith('low.py:5: pkg.low (layer middle) imports pkg.high (higher layer '
                        'top)') for p in problems)
  assert any('leaf.py:66: pkg.sub.leaf (layer middle) imports pkg.high' in p for p in problems)
  # 'pkg.h*' and 'pkg.high' are both in 'top': one layer, no ambiguity. Across layers: error.
  with pytest.raises(LookupError, match=r'pkg.base matches several layers .*\(bottom, top\)'):
    layer_of('pkg.base', PLANTED_LAYERS + (('top', ('pkg.b*',)),))
  assert layer_of('medinv.inversion.figures') == layer_of('medinv.attribute.experiment')
  assert layer_of('medinv.data.tfds_util') == 1 and layer_of('medinv.membership.attacks') == 6
  assert layer_of('medinv.defenses.draws') < layer_of('medinv.training.trainer')


def test_checker_finds_planted_cycles(planted):
  # pkg.high -> pkg.sub.leaf -> pkg.high (importlib), and pkg.low -> pkg.high -> pkg.low.
  assert import_cycles(planted) == [['pkg.high', 'pkg.low', 'pkg.sub.leaf']]
  acyclic = {n: m for n, m in planted.items() if n != 'pkg.high'}
  assert import_cycles(acyclic) == []


def test_checker_finds_planted_forbidden_chains(planted):
  problems = forbidden_violations(planted, ((('pkg.base', 'pkg.low'), ('pkg.sub.*',)),))
  assert problems == ['pkg.low imports pkg.sub.leaf: pkg.low -> pkg.high -> pkg.sub.leaf']
