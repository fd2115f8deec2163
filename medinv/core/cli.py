"""absl entry points that end a user error with one clear line instead of a traceback.

Every `experiments/*.py` defines its config flag with `cli.define_config_file` and ends with
`cli.run(main)` instead of `app.run(main)`:
- flag parsing errors (a mistyped `--config.defense.sigm=0.1`, a value of the wrong type, a
  config file that does not load, an unknown flag) print `error: <flag>: <what is wrong>`,
  with the fields or values allowed, and exit 2;
- an override that changes an option the run never reads (a field of an attack or defense
  block whose group's `names` does not select it, e.g. `--config.attack.rmle.objective=...`
  while attack.names has no 'rmle') is refused the same way (`unselected_override`);
- errors raised by the run print as described by `medinv.core.errors.describe`: any ValueError
  (every `validate(config)`, an incompatible workdir) exits 2, DataError / a diverged run /
  no space left exit 1.
Each prints exactly one line on stderr; with MEDINV_DEBUG=1 the traceback comes before it.
Other exceptions are bugs and keep their traceback.
`run` also sets the XLA:CPU flag every experiment runs with (medinv.core.xla), before JAX
starts its backend, and drops library lines a run would print before anything of its own
(`quiet_startup_logs`), so that an error is the only line on stderr.

Flags every experiment shares: --wait_for_workdir (a run into a workdir another run holds
waits for it instead of refusing; medinv.core.locks). It sets $MEDINV_WAIT_FOR_WORKDIR, so
the processes the run starts (study workers, sweep hosts) wait too.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import logging as std_logging
import os
import re
import sys
import traceback
from typing import Callable, NoReturn

from absl import app
from absl import flags
from ml_collections import config_dict
from ml_collections import config_flags
from ml_collections.config_flags import config_flags as config_flags_lib

from medinv.core import errors
from medinv.core import locks
from medinv.core import xla

flags.DEFINE_bool('wait_for_workdir', False, 'When another run is using --workdir, wait for '
                  'it to finish instead of refusing to start.')


ENV_EXTENSIONS = 'MEDINV_EXTENSIONS'  # os.pathsep-separated; the study's workers read it too
flags.DEFINE_multi_string(
    'extension', [], 'A Python file (or module name) to import before the run, e.g. one that '
    'registers a model of your own (medinv.models.register), an attack or a defense; '
    'repeatable.')


def load_extensions(names: list[str] | None = None) -> None:
  """Imports each extension (a .py path or a module name): `names`, else $MEDINV_EXTENSIONS.
  Records them in $MEDINV_EXTENSIONS, so processes the run starts import them too.

  Raises:
    app.UsageError: naming an extension file that does not exist.
  """
  if names is None:
    names = [n for n in os.environ.get(ENV_EXTENSIONS, '').split(os.pathsep) if n]
  for name in names:
    if name.endswith('.py'):
      path = os.path.abspath(name)
      if not os.path.isfile(path):
        raise app.UsageError(f'--extension {name}: no such file')
      module_name = 'medinv_extension_' + re.sub(r'\W', '_', os.path.basename(path)[:-3])
      if module_name in sys.modules:
        continue
      spec = importlib.util.spec_from_file_location(module_name, path)
      module = importlib.util.module_from_spec(spec)
      sys.modules[module_name] = module
      spec.loader.exec_module(module)
    else:
      importlib.import_module(name)
  os.environ[ENV_EXTENSIONS] = os.pathsep.join(
      os.path.abspath(n) if n.endswith('.py') else n for n in names)


def one_line(message: str) -> str:
  """`message` on one line: its non-empty lines, stripped, joined by spaces."""
  return ' '.join(line.strip() for line in str(message).splitlines() if line.strip())


def fail(code: int, message: str) -> NoReturn:
  """Prints `error: message` as one line on stderr (after the traceback when MEDINV_DEBUG is
  set), then exits with `code`."""
  sys.stdout.flush()
  if errors.debug() and sys.exc_info()[0] is not None:
    traceback.print_exc()
  print(f'error: {one_line(message)}', file=sys.stderr, flush=True)
  sys.exit(code)


def _config_path(argv: list[str], name: str) -> str | None:
  """The last value given to --name (or -name) in argv, or None."""
  for i, arg in reversed(list(enumerate(argv))):
    found = re.match(rf'^--?{re.escape(name)}(=(.*))?$', arg)
    if found:
      return found.group(2) if found.group(1) else (argv[i + 1] if i + 1 < len(argv) else None)
  return None


def _overrides(argv: list[str], name: str) -> list[str]:
  """Dotted field paths of the --name.a.b overrides in argv ('a.b')."""
  paths = []
  for arg in argv:
    found = re.match(rf'^--?(?:no)?{re.escape(name)}\.([^=]+)', arg)
    if found:
      paths.append(found.group(1))
  return paths


def unknown_field(config, path: str, name: str = 'config') -> str | None:
  """Why `path` ('train.sigm') is no field of config, with the fields allowed; None if it is."""
  node, walked = config, name
  for part in path.split('.'):
    if not isinstance(node, (config_dict.ConfigDict, dict)):
      return (f'--{name}.{path}: {walked} is a value ({type(node).__name__}), not a group '
              'of fields')
    if part not in node:
      keys = sorted(node.keys())
      close = difflib.get_close_matches(part, keys, n=1)
      hint = f'did you mean {close[0]!r}? ' if close else ''
      return (f'--{name}.{path}: {walked} has no field {part!r}; {hint}'
              f'fields of {walked}: {", ".join(keys)}')
    node, walked = node[part], f'{walked}.{part}'
  return None


def _swept(config, dotted: str) -> bool:
  """Whether config.sweep.axes holds the field `dotted` (it varies over the sweep's runs)."""
  node = config
  for part in ('sweep', 'axes', *dotted.split('.')):
    if not isinstance(node, (config_dict.ConfigDict, dict)) or part not in node:
      return False
    node = node[part]
  return True


def unselected_override(config, path: str, name: str = 'config') -> str | None:
  """Why the override `path` ('attack.rmle.objective') changes nothing the run reads; None if
  it may.

  A group of components (config.attack, a membership config.defense) lists the ones it runs
  in `names` and carries a block of options per component (`<group>.<block>`); configs carry
  a block for every component they might run (configs/components.py writes each registered
  default), so a block's presence is no error, but changing a field of a block its group's
  `names` does not list is: the run would ignore it.
  """
  parts = path.split('.')
  node = config
  for i in range(len(parts) - 1):
    if not isinstance(node, (config_dict.ConfigDict, dict)) or parts[i] not in node:
      return None
    names, block = node.get('names'), node[parts[i]]
    group = '.'.join(parts[:i])
    if (i and isinstance(names, (tuple, list)) and all(isinstance(n, str) for n in names)
        and isinstance(block, (config_dict.ConfigDict, dict)) and parts[i] not in names
        and not _swept(config, f'{group}.names')):
      return (f'--{name}.{path}: {group}.{parts[i]} is not run ({group}.names is '
              f'{tuple(names)}); add {parts[i]!r} to --{name}.{group}.names or drop this option')
    node = block
  return None


def _unknown_override(argv: list[str], name: str, default: str | None) -> str | None:
  """The message for the first override in argv that names no field of the config file."""
  path = _config_path(argv, name) or default
  if path is None and name in flags.FLAGS:
    path = str(flags.FLAGS[name].default_as_str).strip("'")
  try:
    config = config_flags_lib.ConfigFileFlagParser(name).parse(path)
  except Exception:  # pylint: disable=broad-except  # Not loadable: the caller says so.
    return None
  for override in _overrides(argv, name):
    message = unknown_field(config, override, name)
    if message:
      return message
  return None


def flag_error_message(error: Exception, argv: list[str], config_flag: str | None,
                       default_config: str | None = None) -> str:
  """One line for an exception raised while parsing flags (default_config: the config
  file used when argv names none)."""
  text = str(error).strip()
  if config_flag and isinstance(error, AttributeError) and "attribute 'get_config'" in text:
    path = (_config_path(argv, config_flag) or default_config or '').partition(':')[0]
    return f'--{config_flag}={path}: {path} defines no get_config(arg=None) function'
  if config_flag and isinstance(error, (AttributeError, KeyError)):
    return (_unknown_override(argv, config_flag, default_config) or
            f'--{config_flag}: {text}')
  if 'Traceback (most recent call last)' in text:  # config_flags wraps get_config's error.
    flag, _, _ = text.partition(': Error whilst parsing config file')
    last = [line for line in text.splitlines() if line.strip()][-1]
    return f'{flag}: {last.partition(": ")[2] or last}'
  if isinstance(error, OSError) and config_flag:  # A config file that does not load.
    path = _config_path(argv, config_flag) or default_config
    reason = [line.strip() for line in text.splitlines() if line.strip()][-1]
    return f'--{config_flag}={path}: cannot load the config file ({reason})'
  if isinstance(error, flags.Error):
    return f'{text} (--helpfull lists every flag)'
  return f'{type(error).__name__}: {text}'


def define_config_file(name: str, default: str, help_string: str) -> None:
  """`config_flags.DEFINE_config_file(name, default, help_string, lock_config=True)`.

  Without --name on the command line, config_flags loads the default config and applies
  the --name.* overrides right here, at import: a mistyped override fails with one line too.
  """
  try:
    config_flags.DEFINE_config_file(name, default, help_string, lock_config=True)
  except Exception as error:  # pylint: disable=broad-except
    fail(errors.EXIT_USAGE, flag_error_message(error, sys.argv, name, default))


def parse_flags(argv: list[str], config_flag: str | None = 'config') -> list[str]:
  """absl flag parsing (`app.run`'s flags_parser) that fails with one line and exit code 2."""
  config = None
  try:
    args = flags.FLAGS(argv)
    if flags.FLAGS.wait_for_workdir:
      os.environ[locks.WAIT_ENV] = '1'
    if config_flag and config_flag in flags.FLAGS:
      config = flags.FLAGS[config_flag].value
      if config is not None:
        getattr(config, 'keys', None)  # A config file that failed to load raises here.
  except Exception as error:  # pylint: disable=broad-except
    fail(errors.EXIT_USAGE, flag_error_message(error, argv, config_flag))
  for path in _overrides(argv, config_flag) if config is not None else ():
    message = unselected_override(config, path, config_flag)
    if message:
      fail(errors.EXIT_USAGE, message)
  return args


def guarded(main: Callable[[list[str]], None], argv: list[str]) -> None:
  """Runs main(argv); a user error ends in `fail` (see medinv.core.errors.describe)."""
  try:
    if flags.FLAGS.extension:
      load_extensions(flags.FLAGS.extension)
    main(argv)
  except (Exception, KeyboardInterrupt) as error:  # pylint: disable=broad-except
    if isinstance(error, app.UsageError):
      fail(errors.EXIT_USAGE, str(error))
    described = errors.describe(error)
    if described is None:
      raise
    fail(*described)


def _not_custom_data_configuration(record: std_logging.LogRecord) -> bool:
  return not record.getMessage().startswith('Using custom data configuration')


def quiet_startup_logs() -> None:
  """Drops JAX's INFO lines on backends it did not find ('Unable to initialize backend
  'tpu' ...') and on joining a multi-process run (its warnings still show), and TFDS's
  'Using custom data configuration' warning (a dataset built with options, e.g. mias at
  image size 16), which every run printed before anything of its own."""
  for name in ('jax._src.xla_bridge', 'jax._src.distributed'):
    std_logging.getLogger(name).setLevel(std_logging.WARNING)
  absl_logger = std_logging.getLogger('absl')
  if _not_custom_data_configuration not in absl_logger.filters:
    absl_logger.addFilter(_not_custom_data_configuration)


def run(main: Callable[[list[str]], None], config_flag: str | None = 'config') -> None:
  """`app.run(main)` with one-line user errors; config_flag names the config-file flag.

  XLA:CPU's convolutions run on Eigen (`xla.use_eigen_cpu_convolutions`): set here, before
  main makes the first jax array, so every experiment and the processes it starts (study
  workers, sweep hosts) compute with the setting its numbers were measured with.
  """
  xla.use_eigen_cpu_convolutions()
  quiet_startup_logs()
  app.run(functools.partial(guarded, main),
          flags_parser=functools.partial(parse_flags, config_flag=config_flag))
