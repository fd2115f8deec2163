"""A new model-inversion attack and a new defense, registered from outside medinv, run end to end.

The extension is the README's "Adding an attack or a defense" example: the attacker's
nearest auxiliary image in feature space, and rounding of the transmitted features.
"""
import csv
import os

import jax.numpy as jnp
import ml_collections
import pytest

from configs import demo
from medinv import defenses
from medinv.study import runners
from medinv.study import study
from medinv.inversion import reconstruct
from medinv.inversion import attacks as inversion_attacks


def nearest_aux(ctx, held, features, prepared):
  """Reconstructs each target as the attacker's image whose features are closest."""
  del prepared
  aux = defenses.query_each(held, ctx.edge, ctx.x_aux, reconstruct.ATTACKER_QUERIES)
  distances = jnp.sum(jnp.square(features[:, None] - aux[None]), axis=(2, 3, 4))
  return ctx.x_aux[jnp.argmin(distances, axis=1)]


class FeatureRounding(defenses.Deployment):
  """Hospital A rounds the features it sends to multiples of strength (0: unchanged)."""

  def transmit(self, query_index, features):
    step = jnp.maximum(self.strength, 1e-6)
    return jnp.where(self.strength > 0, jnp.round(features / step) * step, features)


@pytest.fixture
def registered():
  inversion_attacks.register('nearest_aux', nearest_aux, defaults={}, replace=True)
  defenses.register('feature_rounding',
                    lambda key, theta, strength, cfg, *, split, variant:
                    FeatureRounding(key, theta, strength, cfg),
                    acts_on='features', defaults={'strengths': (0.0, 0.5)}, replace=True)
  yield
  del inversion_attacks.ATTACKS['nearest_aux'], defenses.DEFENSES['feature_rounding']


def _csv_rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_registered_attack_and_defense_run_in_the_study(registered, tmp_path, data_dir):
  config = demo.get_config('smoke')
  inversion = config.parts.inversion_breastmnist
  with config.unlocked():
    for name in [n for n in config.parts if n != 'inversion_breastmnist']:
      del config.parts[name]
    inversion.data.data_dir = data_dir
    inversion.attack.splits = (2,)
    inversion.attack.names = ('nearest_aux', 'rmle')
    inversion.attack.nearest_aux = inversion_attacks.config_block('nearest_aux')
    inversion.defense.model_perturbation.update(strengths=(0.0,), modes=('fixed',))
    inversion.defense.feature_rounding = defenses.config_block('feature_rounding',
                                                               strengths=(0.0, 0.5))
  workdir = str(tmp_path / 'study')
  study.run(config, workdir)

  rows = _csv_rows(os.path.join(workdir, 'inversion_breastmnist', 'results.csv'))
  nearest = {(r['defense'], float(r['strength']), r['knows_defense']): r for r in rows
             if r['attack'] == 'nearest_aux'}
  assert set(nearest) == {(defense, strength, view) for view in ('True', 'False')
                          for defense, strength in (('model_perturbation', 0.0),
                                                    ('feature_rounding', 0.0),
                                                    ('feature_rounding', 0.5))}
  # Without noise the new defense deploys the clean model: the same answers, the same accuracy.
  undefended = nearest['model_perturbation', 0.0, 'True']
  for column in ('ssim_mean', 'model_test_accuracy'):
    assert nearest['feature_rounding', 0.0, 'True'][column] == undefended[column]
  # Rounding the features changes what the attacker matches and what hospital B classifies.
  assert nearest['feature_rounding', 0.5, 'True']['ssim_mean'] != undefended['ssim_mean']
  noisy_rmle = [r for r in rows if r['attack'] == 'rmle' and r['defense'] == 'feature_rounding'
                and float(r['strength']) == 0.5]
  assert len(noisy_rmle) == 2  # both attacker views

  report = open(os.path.join(workdir, 'report.md')).read()
  assert '**Every attack under feature_rounding' in report
  table = report.split('**Every attack under feature_rounding')[1].split('\n\n')[1]
  assert '| nearest_aux | 2 |' in table and 'SSIM strength=0.5' in table
  assert os.path.exists(os.path.join(workdir, 'inversion_breastmnist',
                                     'ssim_vs_feature_rounding.png'))


def test_unregistered_block_names_the_field(registered):
  config = demo.get_config('smoke').parts.inversion_breastmnist
  with config.unlocked():
    config.attack.names = ('nearest_aux',)
  with pytest.raises(ValueError, match='attack.nearest_aux: the config has no settings block'):
    runners.get('model_inversion').run(config, '/nonexistent/never/written')
  with config.unlocked():
    config.attack.nearest_aux = ml_collections.ConfigDict({'k': 1})
  with pytest.raises(ValueError, match=r"attack.nearest_aux: unknown fields \['k'\]"):
    runners.get('model_inversion').run(config, '/nonexistent/never/written')
