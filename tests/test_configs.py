"""Config argument parsing and loading of every config file."""
import glob
import importlib
import os

import pytest

from configs import common

CONFIG_FILES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), '..', 'configs', '*.py')))
CONFIG_NAMES = [os.path.basename(p)[:-3] for p in CONFIG_FILES
                if os.path.basename(p) not in ('__init__.py', 'common.py')]


def test_parse_arg():
  args = common.parse_arg('split=4,smoke', split=2, smoke=False, lr=0.1)
  assert args.split == 4 and args.smoke is True and args.lr == 0.1
  assert common.parse_arg(None, smoke=False).smoke is False
  with pytest.raises(ValueError, match="unknown config argument 'splt'.*allowed: smoke, split"):
    common.parse_arg('splt=4', split=2, smoke=False)
  with pytest.raises(ValueError, match='expected int'):
    common.parse_arg('split=four', split=2)
  with pytest.raises(ValueError, match='needs a value'):
    common.parse_arg('split', split=2)


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_config_loads_default_and_smoke(name):
  module = importlib.import_module(f'configs.{name}')
  assert module.__doc__ and './launch.sh' in module.__doc__  # Runnable example commands.
  default, smoke = module.get_config(), module.get_config('smoke')
  assert default.get('seed') == smoke.get('seed')  # smoke shrinks sizes, not the seed.
  assert default.to_dict() != smoke.to_dict()
