"""Defenses: one registry for every defense, each declaring what it acts on.

`medinv.defenses.base` holds the interface: a `Deployment` is the target model as it answers
queries under a defense (the parameters that answer query q, the features hospital A
transmits, what is released), `query_each` / `query_batch` query it, and `DEFENSES` maps a
name to a `Defense` record: what it acts on ('training', 'weights', 'features', 'output'), its
config defaults and its `deploy` function. Every experiment runs, from its config.defense
blocks, the registered defenses that act on what it attacks: model inversion those on
'weights' and 'features' (every block of config.defense), membership inference those on
'weights' and 'output' (the blocks listed in config.defense.names), attribute inference the
'output' ones through its release channel. 'training' defenses are applied by the trainer
from their config.train fields.

This module is the one place that imports the built-in defenses (each registers itself):
  weights   model_perturbation (`medinv.defenses.perturbation`);
  features  feature_noise, feature_dropout, learned_noise (`medinv.defenses.features`);
  output    output_postprocessing, randomized_response (`medinv.defenses.release`);
  training  dp_sgd, training_label_flips, nopeek (registered below; medinv.training applies
            them).
It re-exports the public API, so `defenses.register(...)` and `defenses.randomized_response`
work from here. Adding a defense is one class and one `register` call; e.g. rounding the
weights that answer queries, which model inversion and membership inference then both run:

    class WeightRounding(defenses.Deployment):
      def params_for(self, query_index):
        step = jnp.maximum(self.strength, 1e-6)
        return jax.tree.map(lambda w: jnp.where(self.strength > 0, jnp.round(w / step) * step,
                                                w), self.params)

    defenses.register('weight_rounding', lambda key, theta, strength, cfg, *, split, variant:
                      WeightRounding(key, theta, strength, cfg),
                      acts_on='weights', defaults={'strengths': (0.0, 0.05)})
    config.defense.weight_rounding = defenses.config_block('weight_rounding')
    # membership inference: also config.defense.names += ('weight_rounding',)

A defense on the transmitted features overrides `transmit(query_index, features)` instead,
one on the released output `release(vector, label)`.
"""
from medinv.defenses import base
from medinv.defenses import features
from medinv.defenses import perturbation
from medinv.defenses import release
from medinv.defenses.base import (ACTS_ON, DEFENSES, Defense, Deployment, applicable,
                                  check_block, config_block, deploy, get, query_batch,
                                  query_each, register)
from medinv.defenses.perturbation import (MODES, SCOPES, SIGMA_SCALES, ModelPerturbation,
                                          deployed_params, noise_to_weight, perturb_params,
                                          scope_mask)
from medinv.defenses.release import (RELEASES, OutputPostprocessing, RandomizedResponse,
                                     candidate_view, model_probs, postprocess_probs,
                                     randomized_response, randomized_response_epsilon,
                                     release_channel, release_through)

__all__ = [
    'base', 'features', 'perturbation', 'release',
    'ACTS_ON', 'DEFENSES', 'Defense', 'Deployment', 'applicable', 'check_block', 'config_block',
    'deploy', 'get', 'query_batch', 'query_each', 'register',
    'MODES', 'SCOPES', 'SIGMA_SCALES', 'ModelPerturbation', 'deployed_params', 'noise_to_weight',
    'perturb_params', 'scope_mask',
    'RELEASES', 'OutputPostprocessing', 'RandomizedResponse', 'candidate_view', 'model_probs',
    'postprocess_probs', 'randomized_response', 'randomized_response_epsilon',
    'release_channel', 'release_through',
]

# Training-time defenses: the trainer (medinv.training.trainer, population) reads their
# settings from these config.train fields; an experiment's config.defense has no block for them.
register('dp_sgd', acts_on='training',
         train_fields=('train.dp.target_epsilon', 'train.dp.delta', 'train.dp.clip_norm'))
register('training_label_flips', acts_on='training', train_fields=('train.label_flip_prob',))
register('nopeek', acts_on='training', train_fields=('train.nopeek_weight', 'train.nopeek_split'))
