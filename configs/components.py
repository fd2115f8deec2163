"""The config block of every built-in attack and defense, written out.

An experiment config gives each attack it runs a block `config.attack.<name>` and each defense
a block `config.defense.<name>`: the component's registered defaults, with the overrides the
config applies. Configs import nothing from medinv, so those defaults are written here as plain
dicts, one table per registry:
  ATTRIBUTE_ATTACKS   medinv.attribute.attacks.ATTACKS
  INVERSION_ATTACKS   medinv.inversion.attacks.ATTACKS
  MEMBERSHIP_ATTACKS  medinv.membership.attacks.ATTACKS
  DEFENSES            medinv.defenses.DEFENSES
tests/test_config_defaults.py checks every block against its registry's defaults
(`find(name).defaults`), so a changed default fails there until this file follows it.
An attack or defense of your own needs no entry here: write its block in your config.
"""
from __future__ import annotations

import ml_collections

ATTRIBUTE_ATTACKS = {
    'map': {'variants': ('indicator', 'confusion'), 'eps': 0.001},
    'learned': {'hidden': (32,), 'steps': 300, 'learning_rate': 0.01, 'weight_decay': 0.0001},
    'prior': {},
    'classifier': {'hidden': (32,), 'steps': 300, 'learning_rate': 0.01,
                   'weight_decay': 0.0001},
}

INVERSION_ATTACKS = {
    'inverse_network': {'width': 64, 'steps': 400, 'batch_size': 32, 'learning_rate': 0.002,
                        'augment_flip': True},
    'rmle': {'objective': 'feature_l2:1.0,tv:0.005', 'steps': 300, 'learning_rate': 0.02},
    'query_free': {'objective': 'feature_l2:1.0,tv:0.005', 'steps': 300, 'learning_rate': 0.02,
                   'shadow_steps': 400, 'shadow_batch_size': 32, 'shadow_learning_rate': 0.001,
                   'shadow_uses_target_cloud': True, 'augment_flip': True},
    'feature_alignment': {'substitute_steps': 400, 'substitute_learning_rate': 0.001,
                          'mmd_weight': 10.0, 'width': 64, 'steps': 400, 'batch_size': 32,
                          'learning_rate': 0.002, 'augment_flip': True, 'intercepted': 128},
    'mi_face': {'objective': 'class_conf:1.0', 'max_steps': 500, 'learning_rate': 0.1,
                'patience': 50, 'threshold': 0.01, 'eval_width': 16, 'eval_steps': 300,
                'eval_batch_size': 32, 'eval_learning_rate': 0.002},
    'noise_aware_inverse': {'width': 64, 'steps': 400, 'batch_size': 32,
                            'learning_rate': 0.002, 'augment_flip': True, 'views': 1},
}

MEMBERSHIP_ATTACKS = {
    'lira_online': {'fixed_variance': False, 'min_std': 0.001},
    'lira_offline': {'fixed_variance': False, 'min_std': 0.001},
    'lira_online_fixed_variance': {'fixed_variance': True, 'min_std': 0.001},
    'lira_offline_fixed_variance': {'fixed_variance': True, 'min_std': 0.001},
    'rmia': {'online': True, 'offline_a': 0.3, 'gamma': 1.0},
    'rmia_offline': {'online': False, 'offline_a': 0.3, 'gamma': 1.0},
    'loss_threshold': {},
    'label_only': {},
    'label_lira': {},
}

DEFENSES = {
    'model_perturbation': {'strengths': (0.0, 0.01, 0.02, 0.05, 0.1),
                           'modes': ('fixed', 'per_query'), 'scope': 'edge',
                           'sigma_scale': 'absolute'},
    'feature_noise': {'strengths': (0.0, 0.25, 0.5, 1.0)},
    'feature_dropout': {'strengths': (0.0, 0.3, 0.6, 0.9)},
    'learned_noise': {'strengths': (0.0, 0.5, 1.0, 2.0), 'fit_strength': 1.0, 'steps': 300,
                      'batch_size': 64, 'learning_rate': 0.05},
}


def block(table: dict, name: str, **overrides) -> ml_collections.ConfigDict:
  """The config block of component `name` of `table` (e.g. DEFENSES), with overrides.

  Args:
    table: one of the tables above.
    name: a component of that table.
    **overrides: fields to change or add (e.g. a defense's `num_draws`).

  Returns:
    A new ConfigDict: the component's defaults updated with overrides.
  """
  if name not in table:
    raise ValueError(f'no config block {name!r}; written out here: {sorted(table)}')
  config = ml_collections.ConfigDict(dict(table[name]))
  config.update(overrides)
  return config
