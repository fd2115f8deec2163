"""The subgroups membership inference is also evaluated on (config.evaluation.subgroups).

Each name is 'label' (the class) or a raw column of a record dataset (e.g. 'sex'); every value
of it is one subgroup, a mask over the candidate records. The experiment resolves them once
before training (so a misspelt name stops the run before any compute) and again when it
evaluates the undefended attacks per subgroup.
"""
from __future__ import annotations

import numpy as np

from medinv import data as data_lib


def masks(config, task: data_lib.Task, num_records: int) -> list[tuple[str, str, np.ndarray]]:
  """(subgroup, value, mask) per value of each of config.evaluation.subgroups.

  Args:
    config: the experiment's config (evaluation.subgroups, data.dataset).
    task: the loaded task (its training labels, class names and raw records).
    num_records: how many candidate records (the first of the training split) the masks cover.

  Returns:
    (name, value's label, bool mask (num_records,)) for each value of each subgroup name.

  Raises:
    ValueError: a name is neither 'label' nor a column of the dataset (names the field).
  """
  groups = []
  raw = task.records_train
  columns = [c.name for c in raw.columns] if raw is not None else []
  for name in config.evaluation.subgroups:
    if name == 'label':
      values = np.asarray(task.y_train[:num_records])
      names = {v: task.class_names[v] for v in np.unique(values)}
    elif name in columns:
      column = raw.columns[columns.index(name)]
      values = np.asarray(raw.features[:num_records, columns.index(name)])
      names = {v: (column.value_names[int(v)] if column.value_names else f'{v:g}')
               for v in np.unique(values)}
    else:
      raise ValueError(f"evaluation.subgroups: {name!r} is neither 'label' nor a column of "
                       f'{config.data.dataset} (columns: {columns})')
    groups += [(name, names[v], values == v) for v in names]
  return groups
