"""configs/ against medinv: every block configs/components.py writes out equals its registered
component's defaults (field names, values and types), and no config imports medinv."""
import ast
import glob
import os

import pytest

from configs import components
from medinv import defenses
from medinv.attribute import attacks as attribute_attacks
from medinv.inversion import attacks as inversion_attacks
from medinv.membership import attacks as membership_attacks

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'configs')

# components.py's table -> the registry whose defaults it writes out.
TABLES = {
    'ATTRIBUTE_ATTACKS': (components.ATTRIBUTE_ATTACKS, attribute_attacks.ATTACKS),
    'INVERSION_ATTACKS': (components.INVERSION_ATTACKS, inversion_attacks.ATTACKS),
    'MEMBERSHIP_ATTACKS': (components.MEMBERSHIP_ATTACKS, membership_attacks.ATTACKS),
    'DEFENSES': (components.DEFENSES, defenses.DEFENSES),
}
BLOCKS = [(table, name) for table, (blocks, _) in TABLES.items() for name in blocks]


def _typed(value):
  """value with the type of every part of it, so that 1 and 1.0, or (1,) and [1], differ (a
  ConfigDict field keeps its type: an override of the other type fails)."""
  if isinstance(value, (tuple, list)):
    return (type(value).__name__, [_typed(v) for v in value])
  if isinstance(value, dict):
    return {key: _typed(v) for key, v in value.items()}
  return (type(value).__name__, value)


@pytest.mark.parametrize('table, name', BLOCKS)
def test_block_equals_the_registered_defaults(table, name):
  blocks, registry = TABLES[table]
  defaults = dict(registry.find(name).defaults)
  assert _typed(blocks[name]) == _typed(defaults), (
      f'configs/components.py {table}[{name!r}] differs from the registered defaults '
      f'{defaults}: write them out again')


def test_every_table_has_blocks():
  assert all(len(blocks) >= 4 for blocks, _ in TABLES.values())
  assert {'model_perturbation', 'learned_noise'} <= set(components.DEFENSES)


def test_block_copies_and_overrides():
  block = components.block(components.DEFENSES, 'model_perturbation', scope='all',
                           num_draws=3)
  assert block.scope == 'all' and block.num_draws == 3
  assert components.DEFENSES['model_perturbation']['scope'] == 'edge'  # the table is unchanged
  with pytest.raises(ValueError, match="no config block 'sigma'; written out here: "):
    components.block(components.DEFENSES, 'sigma')


def _imported_modules(path: str) -> list[str]:
  tree = ast.parse(open(path).read(), path)
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      names.append(node.module or '')
  return names


def test_configs_import_nothing_from_medinv():
  paths = sorted(glob.glob(os.path.join(CONFIGS, '*.py')))
  assert len(paths) > 10
  offenders = {os.path.basename(path): name for path in paths
               for name in _imported_modules(path) if name.split('.')[0] == 'medinv'}
  assert not offenders, f'configs import medinv (write defaults in components.py): {offenders}'
