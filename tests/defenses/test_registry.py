"""The one defense registry (medinv.defenses.base): what each built-in acts on, the checks of
a registration and of a config block, and a defense registered from outside medinv running in
model inversion and in membership inference alike."""
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import membership_heart
from configs import inversion_breastmnist
from medinv import defenses
from medinv.membership import attacks as membership_attacks
from medinv.membership import validate as membership_validate
from medinv.study import runners

STEP = 0.05  # the rounding grid of the test's defense


@dataclasses.dataclass(frozen=True)
class WeightRounding(defenses.Deployment):
  """Rounds every weight that answers a query to a multiple of strength (0: unchanged), as a
  user's own module would define a defense."""

  def params_for(self, query_index):
    del query_index
    step = jnp.maximum(self.strength, 1e-6)
    return jax.tree.map(lambda w: jnp.where(self.strength > 0, jnp.round(w / step) * step, w),
                        self.params)


@pytest.fixture
def weight_rounding():
  defenses.register('weight_rounding', lambda key, theta, strength, cfg, *, split, variant:
                    WeightRounding(key, theta, strength, cfg),
                    acts_on='weights', defaults={'strengths': (0.0, STEP)})
  yield 'weight_rounding'
  del defenses.DEFENSES['weight_rounding']


def test_every_built_in_declares_what_it_acts_on():
  acts_on = {name: defense.acts_on for name, defense in defenses.DEFENSES.items()}
  assert acts_on == {
      'model_perturbation': 'weights', 'feature_noise': 'features',
      'feature_dropout': 'features', 'learned_noise': 'features',
      'output_postprocessing': 'output', 'randomized_response': 'output',
      'dp_sgd': 'training', 'training_label_flips': 'training', 'nopeek': 'training'}
  for name in ('dp_sgd', 'training_label_flips', 'nopeek'):
    defense = defenses.get(name)
    assert defense.deploy is None and defense.train_fields
    assert all(field.startswith('train.') for field in defense.train_fields)
  # A label-only release is the randomized response, and a one-hot postprocessing.
  assert defenses.get('randomized_response').label_only(defenses.config_block(
      'randomized_response'))
  postprocessing = defenses.get('output_postprocessing')
  for release, label_only in (('label', True), ('rounded', False), ('probs', False)):
    assert postprocessing.label_only(defenses.config_block('output_postprocessing',
                                                           release=release)) == label_only


def test_registration_and_blocks_are_checked():
  deploy = lambda key, theta, strength, cfg, *, split, variant: defenses.Deployment(key, theta)
  with pytest.raises(ValueError, match="acts_on must be one of .*got 'labels'"):
    defenses.register('x', deploy, acts_on='labels', defaults={'strengths': (0.0,)})
  with pytest.raises(ValueError, match='"strengths" grid'):
    defenses.register('x', deploy, acts_on='weights', defaults={})
  with pytest.raises(ValueError, match="acts on 'training'"):
    defenses.register('x', deploy, acts_on='training', train_fields=('train.x',))
  with pytest.raises(ValueError, match="defense 'model_perturbation' is already registered"):
    defenses.register('model_perturbation', deploy, acts_on='weights',
                      defaults={'strengths': (0.0,)})
  assert 'x' not in defenses.DEFENSES
  with pytest.raises(ValueError, match=r"defense.names: defense 'dp_sgd' acts on training "
                                       r'\(set train.dp.target_epsilon'):
    defenses.applicable('dp_sgd', ('weights', 'output'), 'defense.names', 'membership inference')
  with pytest.raises(ValueError, match="defense.cloak: unknown defense 'cloak'"):
    defenses.applicable('cloak', ('weights',), 'defense.cloak', 'model inversion')
  block = ml_collections.ConfigDict(defenses.config_block('randomized_response'))
  defenses.check_block('randomized_response', block)
  for field, value, message in (('strengths', (), 'strengths is empty'),
                                ('strengths', (-0.1,), r'must be >= 0, got \[-0.1\]'),
                                ('strengths', (1.5,), 'flip probabilities in'),
                                ('queries', 0, 'queries >= 1')):
    bad = ml_collections.ConfigDict(block.to_dict())
    bad[field] = value
    with pytest.raises(ValueError, match=message):
      defenses.check_block('randomized_response', bad)
  drawn = ml_collections.ConfigDict({**block.to_dict(), 'num_draws': 2})
  with pytest.raises(ValueError, match=r"randomized_response: unknown fields \['num_draws'"):
    defenses.check_block('randomized_response', drawn)
  defenses.check_block('randomized_response', drawn, common_fields=('num_draws',))


def test_membership_refuses_what_it_cannot_attack():
  config = membership_heart.get_config('smoke')
  config.defense.names = ('feature_noise',)
  config.defense.feature_noise = defenses.config_block('feature_noise')
  with pytest.raises(ValueError, match="defense.names: defense 'feature_noise' acts on features; "
                                       'membership inference runs the defenses that act on '
                                       'weights or output'):
    membership_validate.validate(config)


def test_a_weights_defense_from_outside_deploys_like_a_built_in(weight_rounding):
  params = {'w': jnp.asarray([[0.12, -0.26], [0.31, 0.049]])}
  deployed = defenses.deploy(weight_rounding, jax.random.key(0), params, STEP,
                             defenses.config_block(weight_rounding), split=None, variant='')
  np.testing.assert_allclose(deployed.params_for(7)['w'], [[0.1, -0.25], [0.3, 0.05]],
                             atol=1e-7)
  assert deployed.same_for_every_query
  # Through membership inference's measurements: the rounded model's answers.
  x = jnp.asarray([[1.0, 2.0], [-1.0, 0.5]])
  y = jnp.asarray([0, 1])
  apply_fn = lambda variables, records: records @ variables['params']['w']
  out = membership_attacks.defended_outputs(
      jax.random.key(1), params, x, y, apply_fn=apply_fn, queries='identity',
      defense=weight_rounding, variant='', strength=STEP,
      cfg=defenses.config_block(weight_rounding))
  want = membership_attacks.model_outputs(deployed.params_for(0), x, y, apply_fn=apply_fn,
                                          queries='identity')
  np.testing.assert_allclose(out['phi'], want['phi'], rtol=1e-6)


def _inversion_config(data_dir, name):
  config = inversion_breastmnist.get_config('split=2,smoke')
  config.data.data_dir = data_dir
  config.attack.update(names=('rmle',), knows_defense=(True,))
  config.defense.model_perturbation.update(strengths=(0.0,), modes=('fixed',))
  for feature_defense in ('feature_noise', 'learned_noise'):
    del config.defense[feature_defense]
  config.defense[name] = defenses.config_block(name)
  return config


def _membership_config(data_dir, name):
  config = membership_heart.get_config('smoke')
  config.data.data_dir = data_dir
  config.evaluation.update(bootstrap_samples=20, subgroups=())
  config.defense.names = (name,)
  config.defense[name] = defenses.config_block(name)
  return config


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_a_defense_registered_outside_medinv_runs_in_inversion_and_membership(
    weight_rounding, tmp_path, data_dir):
  inversion = runners.get('model_inversion').run(_inversion_config(data_dir, weight_rounding),
                                                 str(tmp_path / 'inversion'))
  rows = {(r['defense'], r['strength']): r for r in inversion['rows']
          if r['attack'] == 'rmle'}
  assert set(rows) == {('model_perturbation', 0.0), (weight_rounding, 0.0),
                       (weight_rounding, STEP)}
  undefended = rows['model_perturbation', 0.0]
  for column in ('ssim_mean', 'mse_mean', 'model_test_accuracy'):
    assert rows[weight_rounding, 0.0][column] == pytest.approx(undefended[column], rel=1e-5)
  # Rounded edge weights send other features: rMLE inverts another function.
  assert rows[weight_rounding, STEP]['mse_mean'] != pytest.approx(undefended['mse_mean'],
                                                                  rel=1e-3)

  membership = runners.get('membership_inference').run(
      _membership_config(data_dir, weight_rounding), str(tmp_path / 'membership'))
  found = [r for r in membership['rows'] if r['subgroup'] == 'all']
  by_setting = {(r['defense'], r['strength'], r['attack']): r for r in found}
  attack_names = tuple(membership_heart.ATTACKS)
  assert set(by_setting) == {(defense, strength, attack) for attack in attack_names
                             for defense, strength in (('none', 0.0), (weight_rounding, 0.0),
                                                       (weight_rounding, STEP))}
  for attack in attack_names:
    clean = by_setting['none', 0.0, attack]
    assert by_setting[weight_rounding, 0.0, attack]['auc'] == pytest.approx(clean['auc'],
                                                                           abs=1e-6)
    assert (by_setting[weight_rounding, 0.0, attack]['defended_test_accuracy']
            == clean['defended_test_accuracy'])
  # Rounded weights give other losses and confidences to the target and its shadows alike.
  clean = by_setting['none', 0.0, 'loss_threshold']
  rounded = by_setting[weight_rounding, STEP, 'loss_threshold']
  assert rounded['auc'] != pytest.approx(clean['auc'], abs=1e-6)
