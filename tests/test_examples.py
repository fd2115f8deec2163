"""examples/audit_your_model.ipynb: stored without outputs, as examples/make_notebook.py writes
it, and runs end to end (nbclient, a fresh kernel) with every audit showing its table."""
import importlib.util
import os

import nbformat
import pytest
from nbclient import NotebookClient

from configs import common

EXAMPLES = os.path.join(common.REPO, 'examples')


def _maker():
  spec = importlib.util.spec_from_file_location('make_notebook',
                                                os.path.join(EXAMPLES, 'make_notebook.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_notebook_is_stored_stripped_and_up_to_date():
  stored = nbformat.read(os.path.join(EXAMPLES, 'audit_your_model.ipynb'), as_version=4)
  assert all(not cell.get('outputs') and not cell.get('execution_count')
             for cell in stored.cells if cell.cell_type == 'code')
  assert [c.source for c in stored.cells] == [c.source for c in _maker().notebook().cells]


@pytest.mark.e2e  # runs the notebook's five audits end to end (two minutes): the e2e tier
def test_notebook_runs_end_to_end(tmp_path, data_dir, monkeypatch):
  monkeypatch.setenv('MEDINV_NOTEBOOK_WORKDIR', str(tmp_path / 'runs'))
  monkeypatch.setenv('PYTHONPATH', common.REPO)
  monkeypatch.setenv('MEDINV_DATA_DIR', data_dir)
  notebook = nbformat.read(os.path.join(EXAMPLES, 'audit_your_model.ipynb'), as_version=4)
  NotebookClient(notebook, timeout=900, kernel_name='python3',
                 resources={'metadata': {'path': common.REPO}}).execute()
  shown = []
  for cell in notebook.cells:
    for output in cell.get('outputs', []):
      assert output['output_type'] != 'error', output
      shown.append(output.get('text') or output.get('data', {}).get('text/markdown', ''))
  text = '\n'.join(shown)
  for heading in ('**attribute_inference**', '**membership_inference**', '**model_inversion**'):
    assert heading in text
  assert text.count('**membership_inference**') == 2  # arrays in, and medinv's shadows
  assert '| lira_online | all |' in text and '| lira_online | none |' in text
  assert 'TinyMLP test accuracy' in text and 'TinyCNN test accuracy' in text
  assert '| inverse_network | model_perturbation |' in text and '| block2 |' in text
  for figure in ('attribute/attribute.png', 'membership/roc.png', 'inversion/results.csv'):
    assert (tmp_path / 'runs' / figure).exists(), figure
