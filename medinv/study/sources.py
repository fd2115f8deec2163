"""What each part of a study ran on, for report.md: the data's name (every section heading and
the study's title) and a line under each heading with the dataset, the file or variant that
was read, the image size and the train / test record counts."""
from __future__ import annotations

from medinv import data as data_lib
from medinv.data import DataError


def _module(dataset: str):
  return data_lib.RECORD_DATASETS.get(dataset) or data_lib.IMAGE_DATASETS[dataset]


def data_name(config) -> str:
  """The name headings and the title give a part's data.

  Args:
    config: the part's config.data.

  Returns:
    The dataset, and after a colon what picked the file where something did: a MedMNIST
    file ('medmnist:pneumoniamnist'; '_<size>' at sizes other than 28, '_task<k>' for one
    task of a multi-label file), a user's own file or folder ('csv:heart_disease_uci.csv', as
    results name it, `medinv.data.source_name`) or a variant ('mias:abnormal').
  """
  data_lib.check_name(config.dataset)
  options = getattr(_module(config.dataset), 'OPTIONS', ())
  if config.dataset == 'medmnist':
    size, task = int(config.get('medmnist_size', 28)), int(config.get('medmnist_task', -1))
    return (f'medmnist:{config.medmnist_name}' + ('' if size == 28 else f'_{size}')
            + (f'_task{task}' if task >= 0 else ''))
  if 'variant' in options and config.get('variant'):
    return f'{config.dataset}:{config.variant}'
  return data_lib.source_name(config)


def options_text(config) -> str:
  """The dataset's loader options that are set, e.g. 'medmnist_name pneumoniamnist,
  medmnist_size 28' or 'path data/scans.npz' ('' when it has none)."""
  shown = []
  for option in getattr(_module(config.dataset), 'OPTIONS', ()):
    value = config.get(option)
    if isinstance(value, (str, int, float)) and value not in ('', -1, False):
      shown.append(f'{option} {value}')
  return ', '.join(shown)


def split_sizes(config) -> tuple[int, int] | None:
  """(train, test) records of the task a part trained and tested its target on, read as the
  part read them (`medinv.data.load_task`); None when the data cannot be read now."""
  try:
    task = data_lib.load_task(config)
  except DataError:
    return None
  return len(task.y_train), len(task.y_test)


def data_line(config, sizes: tuple[int, int] | None) -> str:
  """The line under a part's heading: what the data is, where it was read from, its image
  size and its train / test records.

  Args:
    config: the part's config.data.
    sizes: (train, test) records (`split_sizes`), or None where unknown.

  Returns:
    One markdown line.
  """
  summary = ((_module(config.dataset).__doc__ or '').strip().splitlines() or [''])[0]
  parts = [f'**Data:** {data_name(config)}: {summary.rstrip(".")}']
  options = options_text(config)
  if options:
    parts.append(f'read with {options}' + (f' from {config.manual_dir}'
                                           if config.get('manual_dir') else ''))
  unit = 'records'
  if not data_lib.is_records(config.dataset):
    parts.append(f'images at {config.image_size}x{config.image_size}')
    unit = 'images'
  parts.append(f'{sizes[0]} train / {sizes[1]} test {unit}' if sizes else
               'train / test counts unavailable (the data cannot be read now)')
  return '; '.join(parts) + '.'


def describe(config) -> dict:
  """{'name': data_name, 'line': data_line} of a part's config.data (reads the data)."""
  return {'name': data_name(config), 'line': data_line(config, split_sizes(config))}


def title(names) -> str:
  """The study's title from the names of the data its parts ran on (each once, in order)."""
  names = list(dict.fromkeys(names))
  return 'medinv study: ' + (', '.join(names) if names else 'no part ran')


def heading(kind: str, part: str, results: dict, fallback: str) -> list[str]:
  """A part's section heading, naming its data, and the data line under it.

  Args:
    kind: the section's kind, e.g. 'Membership inference'.
    part: the part's name.
    results: the part's results; `results['_data']` is its `describe` (set by the study).
    fallback: the data's name when results carry no description.

  Returns:
    Markdown lines.
  """
  data = results.get('_data') or {'name': fallback, 'line': ''}
  lines = [f'## {kind}: {data["name"]} (`{part}`)', '']
  return lines + ([data['line'], ''] if data['line'] else [])
