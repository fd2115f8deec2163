"""Membership inference: LiRA against a target, with shadow models trained in one program.

`run(config, workdir)` is `experiment.run(SPEC, ...)`:
  1. validate (medinv.membership.validate): training config, config.membership, the attack
     registry, config.defense, config.evaluation;
  2. target: K + 1 models of config.model trained as one population (`population.fit`,
     vmapped and sharded over every device, checkpointed in workdir/checkpoints/models so a
     killed run resumes): model 0 is the target, models 1..K the attacker's shadows. Each
     trains on half of the candidate records (the first 2*floor(N/2) training records): the
     shadows on paired complementary halves (shadow 2j+1 on what 2j left out), so every
     record is IN for exactly half of them (K even; K odd: (K-1)/2 or (K+1)/2), the target
     on its own random half. The membership matrix (K + 1, N) is kept as the orbax stage
     workdir/checkpoints/membership (row 0: the target); a rerun in the same workdir with
     another seed, data, training or num_shadows is refused (errors.WorkdirError);
  3. grid: every model's phi / loss / released-label correctness on the candidates and its
     test accuracy under every deployment (`settings`: undefended, then each strength of
     each defense in config.defense; one sharded program); every configured attack
     (config.attack.names, in medinv.membership.attacks.ATTACKS; under a label-only release
     those that read labels) scores the target's candidates; metrics and a stratified
     bootstrap over records (members and non-members resampled apart, the same resamples
     for every attack; `medinv.metrics.roc`); with DP-SGD (train.dp,
     medinv.training.dp_sgd) target and shadows train privately, each row with the accounted
     epsilon (a lower bound on epsilon comes from medinv.membership.audit's canaries, not
     from these records);
  4. rows: one per deployment and attack (AUC, best balanced accuracy, TPR at each of
     evaluation.fprs, each with its percentile-bootstrap interval, next to the target's test
     accuracy under that deployment), on all candidates (subgroup 'all'), and undefended per
     value of each of evaluation.subgroups; the 'all' rows of a deployment also carry its
     strongest attack (highest AUC) with an AUC interval that accounts for choosing it
     (`columns.strongest_columns`); figures (medinv.membership.figures): roc.png
     (log-log, undefended), records.csv (per-record scores), defenses.png (privacy-utility).

TPR at an FPR below one non-member record (fpr * non-members < 1) is the TPR at zero false
positives: rows flag it (`fpr_<f>_below_one_record`), or, with evaluation.below_one_record
'error', the run stops before training with a ValueError naming evaluation.fprs.

Key tree (streams of config.seed, medinv.core.keys):
  init   └ fold_in(init, 1)    model seeds: model k trains as config.seed = seed_k would
                               (named_keys(seed_k): init, epoch shuffles, label flips)
  data   └ fold_in(data, 1)    the target's half of the candidates
  defense└ split(defense, K+1) model k's defense key; deployment i: fold_in(., i)
  attack ├ fold_in(attack, 0)  the shadows' paired halves
         ├ fold_in(attack, 1)  attack i's key: fold_in(., i) (the built-ins use none)
         └ fold_in(attack, 2)  the bootstrap resamples (shared by every attack: paired)
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from medinv.core import checkpoint
from medinv import data as data_lib
from medinv import defenses
from medinv.training import dp_sgd
from medinv.training import experiment
from medinv.core import keys as keys_lib
from medinv.membership import columns
from medinv.membership import figures as membership_figures
from medinv.membership import subgroups
from medinv.membership import validate as membership_validate
from medinv.metrics import roc
from medinv.training import population
from medinv.core import report
from medinv.core import sharding
from medinv.core import stages
from medinv.training import trainer
from medinv.membership import attacks

CHECKPOINT_FIELDS = trainer.CHECKPOINT_FIELDS + ('membership.num_shadows',)


def paired_halves(key: jax.Array, num_models: int, num_records: int) -> np.ndarray:
  """(num_models, num_records) bool: models 2j and 2j+1 train on complementary random halves.

  num_records must be even. Every model holds num_records / 2 records; every record is IN for
  num_models / 2 models (num_models even; odd: the last model takes a random half alone).
  """
  if num_records % 2:
    raise ValueError(f'paired halves need an even number of records, got {num_records}')
  pairs = -(-num_models // 2)
  ranks = jax.vmap(lambda k: jnp.argsort(jax.random.permutation(k, num_records)))(
      jax.random.split(key, pairs))  # rank of each record in pair j's random order
  first = np.asarray(ranks < num_records // 2)
  return np.stack([first, ~first], axis=1).reshape(2 * pairs, num_records)[:num_models]


def random_half(key: jax.Array, num_records: int) -> np.ndarray:
  """(num_records,) bool, exactly half of them True, uniformly at random."""
  return np.asarray(jax.random.permutation(key, num_records) < num_records // 2)


def member_index(membership: np.ndarray) -> np.ndarray:
  """(K, N/2) int32: each model's IN records in ascending order (its training set)."""
  return np.stack([np.flatnonzero(row) for row in membership]).astype(np.int32)


def candidates(task: data_lib.Task) -> tuple[np.ndarray, np.ndarray]:
  """The candidate records: the first 2 * floor(N/2) training records and their labels."""
  n = len(task.y_train) // 2 * 2
  return np.asarray(task.x_train[:n]), np.asarray(task.y_train[:n])


def draw_membership(config, num_records: int) -> np.ndarray:
  """(K + 1, N) bool: row 0 the target's training set, rows 1..K the shadows'."""
  streams = keys_lib.named_keys(config.seed)
  target = random_half(jax.random.fold_in(streams['data'], 1), num_records)
  shadows = paired_halves(jax.random.fold_in(streams['attack'], 0),
                          config.membership.num_shadows, num_records)
  return np.concatenate([target[None], shadows])


def model_points(config, membership: np.ndarray) -> dict[str, np.ndarray]:
  """population.fit points: a seed per model (fold_in(init, 1)), the config's flip and lr."""
  size = membership.shape[0]
  seeds = jax.random.randint(jax.random.fold_in(keys_lib.named_keys(config.seed)['init'], 1),
                             (size,), 0, np.iinfo(np.int32).max)
  return {population.SEED: np.asarray(seeds, np.int32),
          population.FLIP: np.full(size, config.train.label_flip_prob, np.float32),
          population.LR: np.full(size, config.train.learning_rate, np.float32),
          population.TRAIN_INDEX: member_index(membership)}


def settings(config) -> tuple[tuple[str, str, float], ...]:
  """(defense, mode, strength) of every deployment attacked: ('none', '', 0.0) first, then
  every strength of every defense in config.defense.names, in each of its variants (model
  perturbation: its modes; medinv.defenses' `Defense.variants`)."""
  out = [('none', '', 0.0)]
  block = config.get('defense') or {}
  for name in (block.get('names') or ()):
    modes = defenses.get(name).variants(block[name])
    out += [(name, mode, float(s)) for mode in modes for s in block[name].strengths]
  return tuple(out)


def start(workdir: str, config) -> None:
  """Refuses a workdir whose shadows another config trained; writes config.json."""
  checkpoint.check_compatible(os.path.join(workdir, 'config.json'), config.to_dict(),
                              CHECKPOINT_FIELDS)
  report.write_config(workdir, config)


def fit_target(config, task: data_lib.Task, workdir: str) -> dict:
  """The target step: target and shadows as one population, resumed from workdir/checkpoints
  (models/: the population's orbax checkpoints; membership/: the membership matrix)."""
  x, _ = candidates(task)
  membership_validate.check_record_count(config, len(x))
  subgroups.masks(config, task, len(x))  # Names checked before training.
  membership = stages.load_or_compute(os.path.join(workdir, 'checkpoints'), 'membership',
                                      lambda: {'membership': draw_membership(config, len(x))})
  membership = np.asarray(membership['membership']).astype(bool)
  points, _ = population.with_privacy(config, model_points(config, membership),
                                      int(membership[0].sum()))
  # TRAIN_INDEX indexes task.x_train, whose first len(x) records are the candidates.
  model, state, size = population.fit(config, task, points,
                                      checkpoint_dir=os.path.join(workdir, 'checkpoints',
                                                                  'models'),
                                      batch_size=config.membership.models_per_step)
  return {'model': model, 'state': state, 'size': size, 'points': points,
          'membership': membership}


# ----------------------------------------------------------------------------- grid and rows

UTILITY_DRAWS = 16  # answers per test record under a randomised defense (utility's noise)


def score_one(state_point, x, y, x_test, y_test, *, apply_fn, queries: str, deployments
              ) -> list[dict]:
  """One model's phi / loss / correct on the candidates and its test accuracy, per deployment
  ((defense, mode, strength, cfg) of `settings`; the first undefended), each defense's
  randomness from fold_in(the model's defense key, deployment index). Under a defense whose
  answers may differ from query to query (not `Deployment.same_for_every_query`), the test
  accuracy is the mean over UTILITY_DRAWS answers per test record (query numbers after the
  candidates')."""
  state, _, key = state_point
  logits = attacks.view_logits(state.params, x, apply_fn=apply_fn, queries=queries)
  test_logits = attacks.view_logits(state.params, x_test, apply_fn=apply_fn,
                                    queries='identity')
  out = [None] * len(deployments)
  groups = {}  # the strengths of one (defense, mode) run as one loop body: compiled once
  for i, (defense, mode, strength, cfg) in enumerate(deployments):
    if defense == 'none':
      out[i] = attacks.measurements(logits, y)
      out[i]['test_accuracy'] = jnp.mean(jnp.argmax(test_logits[0], -1) == y_test)
    else:
      groups.setdefault((defense, mode, cfg), []).append((i, strength))
  for (defense, mode, cfg), members in groups.items():
    deployed = defenses.deploy(defense, key, state.params, 0.0, cfg, split=None, variant=mode)
    draws = 1 if deployed.same_for_every_query else UTILITY_DRAWS
    tiled = lambda a: jnp.tile(a, (draws,) + (1,) * (a.ndim - 1))
    x_answers, y_answers = tiled(x_test), tiled(y_test)
    test_answer_logits = jnp.tile(test_logits, (1, draws, 1))

    def defended(index_strength):  # traced by lax.map within this iteration
      i, strength = index_strength
      kwargs = dict(apply_fn=apply_fn, defense=defense, variant=mode, strength=strength,
                    cfg=cfg)
      result = attacks.defended_outputs(jax.random.fold_in(key, i), state.params, x, y,
                                        queries=queries, logits=logits, **kwargs)
      test = attacks.defended_outputs(
          jax.random.fold_in(key, i), state.params, x_answers, y_answers,
          queries='identity', first_query=4 * len(y), logits=test_answer_logits, **kwargs)
      return {**result, 'test_accuracy': jnp.mean(test['correct'].astype(jnp.float32))}
    indices = jnp.asarray([i for i, _ in members], jnp.uint32)
    strengths = jnp.asarray([s for _, s in members], jnp.float32)
    results = jax.lax.map(defended, (indices, strengths))
    for j, (i, _) in enumerate(members):
      out[i] = jax.tree.map(lambda leaf, j=j: leaf[j], results)
  return out


@functools.lru_cache(maxsize=None)
def score_fn(apply_fn, queries: str, deployments):
  return functools.partial(score_one, apply_fn=apply_fn, queries=queries,
                           deployments=deployments)


def deployment_blocks(config) -> tuple:
  """settings(config) with each defense's frozen config block (hashable: a cached program)."""
  blocks = config.get('defense') or {}
  return tuple((d, m, s, None if d == 'none' else ml_collections.FrozenConfigDict(blocks[d]))
               for d, m, s in settings(config))


def observation(outputs: dict, membership: np.ndarray) -> attacks.Observation:
  """What the attacker holds: the target's (model 0) outputs and the shadows' (1..K)."""
  return attacks.Observation(target_phi=outputs['phi'][0], target_loss=outputs['loss'][0],
                             shadow_phi=outputs['phi'][1:],
                             shadow_in=membership[1:].astype(np.int32),
                             target_correct=outputs['correct'][0],
                             shadow_correct=outputs['correct'][1:])


@functools.lru_cache(maxsize=None)
def evaluation_program(fprs: tuple[float, ...], num_samples: int):
  """(scores, labels, mask, key) -> (summary, bootstrap samples) of the records in mask,
  jitted once per setting (every subgroup is a mask at the same shape)."""
  def evaluate(scores, labels, mask, key):
    return (roc.membership_summary(scores, labels, fprs, mask),
            roc.bootstrap(key, scores, labels, fprs, num_samples, mask))
  return jax.jit(evaluate)


@functools.lru_cache(maxsize=None)
def score_program(name: str, cfg):
  """Attack `name`'s jitted score(key, obs) at its resolved config (cached: no recompiles)."""
  return jax.jit(functools.partial(attacks.get(name).score, cfg=cfg))


def run_attacks(config, obs: attacks.Observation, labels: np.ndarray, groups,
                labels_only: bool = False) -> dict:
  """{name: {'scores': (N,), 'summary', 'bootstrap', 'groups': [...]}} per configured attack
  (with labels_only, per configured attack that reads labels).

  'groups': per (subgroup, value, mask) of `groups`, the metrics on the records in the mask
  (dicts with 'subgroup', 'value', 'members', 'nonmembers', 'summary', 'bootstrap').
  """
  streams = keys_lib.named_keys(config.seed)
  attack_root = jax.random.fold_in(streams['attack'], 1)
  bootstrap_key = jax.random.fold_in(streams['attack'], 2)
  evaluate = evaluation_program(tuple(float(f) for f in config.evaluation.fprs),
                                int(config.evaluation.bootstrap_samples))
  out = {}
  everyone = np.ones(labels.shape, bool)
  for i, name in enumerate(config.attack.names):
    if labels_only and attacks.get(name).reads != 'label':
      continue
    score = score_program(name, attacks.attack_cfg(config.attack, name))
    scores = np.asarray(score(jax.random.fold_in(attack_root, i), obs))
    summary, samples = jax.device_get(evaluate(scores, labels, everyone, bootstrap_key))
    out[name] = {'scores': scores, 'summary': summary, 'bootstrap': samples, 'groups': []}
    for subgroup, value, mask in groups:
      members = int(labels[mask].sum())
      if members and members < mask.sum():  # Both members and non-members in the group.
        group_summary, group_samples = jax.device_get(evaluate(scores, labels, mask,
                                                               bootstrap_key))
        out[name]['groups'].append({'subgroup': subgroup, 'value': value, 'members': members,
                                    'nonmembers': int(mask.sum()) - members,
                                    'summary': group_summary, 'bootstrap': group_samples})
  return out


def grid(ctx: experiment.Context) -> dict:
  """Every model's outputs on the candidates under every deployment (one program), and every
  attack against the target under each: {'labels', 'deployments': [{'defense', 'mode',
  'strength', 'outputs', 'attacks'}, ...]} (the first undefended, with its subgroups), and
  'outputs' / 'attacks' of the undefended deployment."""
  config, target = ctx.config, ctx.target
  x, y = candidates(ctx.task)
  deployments = deployment_blocks(config)
  defense_keys = jax.random.split(keys_lib.named_keys(config.seed)['defense'], target['size'])
  outputs = sharding.map_grid(score_fn(target['model'].apply, config.attack.queries,
                                       deployments),
                              (target['state'], target['points'], defense_keys), x, y,
                              ctx.task.x_test, ctx.task.y_test,
                              batch_size=config.membership.models_per_step)
  membership = target['membership']
  groups = subgroups.masks(config, ctx.task, len(x))
  done = []
  for (defense, mode, strength, block), out in zip(deployments, outputs):
    labels_only = defense != 'none' and defenses.get(defense).label_only(block)
    done.append({'defense': defense, 'mode': mode, 'strength': strength, 'outputs': out,
                 'attacks': run_attacks(config, observation(out, membership), membership[0],
                                        groups if defense == 'none' else (), labels_only)})
  return {'labels': membership[0], 'deployments': done, 'outputs': done[0]['outputs'],
          'attacks': done[0]['attacks']}


def rows(ctx: experiment.Context, outputs: dict) -> tuple[dict, list[dict]]:
  """(metrics, rows) of results.json: one row per attack on all candidates (subgroup 'all'),
  then one per attack and value of each of evaluation.subgroups."""
  config, labels = ctx.config, outputs['labels']
  num_members = int(labels.sum())
  num_nonmembers = int(labels.size - num_members)
  model_utility = columns.utility(outputs['outputs'], labels, ctx.task.num_classes,
                          np.asarray(ctx.task.y_test))
  common = {'dataset': data_lib.source_name(config.data), 'model': config.model,
            'num_shadows': config.membership.num_shadows, 'queries': config.attack.queries,
            'num_members': num_members, 'num_nonmembers': num_nonmembers,
            'label_flip_prob': float(config.train.label_flip_prob), **model_utility,
            'dp_target_epsilon': float(config.train.dp.target_epsilon),
            'dp_epsilon': float(ctx.target['points'][population.DP_EPSILON][0]),
            'interval': f'{config.evaluation.interval:g} percentile bootstrap over records, '
                        'members and non-members resampled apart '
                        f'({config.evaluation.bootstrap_samples} resamples)'}
  result_rows = []
  for deployment in outputs['deployments']:
    under = {'defense': deployment['defense'], 'mode': deployment['mode'],
             'strength': deployment['strength'],
             'defended_test_accuracy': float(deployment['outputs']['test_accuracy'][0])}
    strongest = columns.strongest_columns(config, deployment['attacks'])
    result_rows += [{**common, **under, 'subgroup': 'all', 'subgroup_value': '',
                     **columns.attack_row(config, name, result, num_nonmembers),
                     **strongest}
                    for name, result in deployment['attacks'].items()]
  summary = {'num_shadows': config.membership.num_shadows, 'num_records': int(labels.size),
             'num_members': num_members, 'num_nonmembers': num_nonmembers, **model_utility,
             'dp_epsilon': common['dp_epsilon'],
             'auc_max': max(r['auc'] for r in result_rows if r['defense'] == 'none')}
  if dp_sgd.is_private(config.train.dp):  # The epsilon above is accounted at this delta.
    summary['delta'] = float(config.train.dp.delta) or dp_sgd.default_delta(num_members)
  undefended = {k: v for k, v in result_rows[0].items()
                if k in ('defense', 'mode', 'strength', 'defended_test_accuracy')}
  for name, result in outputs['attacks'].items():
    for group in result['groups']:
      result_rows.append({**common, **undefended, 'num_members': group['members'],
                          'num_nonmembers': group['nonmembers'],
                          'subgroup': group['subgroup'], 'subgroup_value': group['value'],
                          **columns.attack_row(config, name, group, group['nonmembers'])})
  return summary, result_rows


def figures(ctx: experiment.Context, outputs: dict, result_rows: list[dict]) -> None:
  """roc.png, records.csv (per-record scores) and defenses.png in the workdir."""
  membership_figures.write_records(ctx, outputs)
  membership_figures.plot_roc(ctx, outputs)
  membership_figures.plot_defenses(ctx, result_rows)


SPEC = experiment.Spec(name='membership_inference', validate=membership_validate.validate,
                       grid=grid, rows=rows, target=fit_target, start=start, figures=figures)


def run(config, workdir: str) -> dict:
  """Trains target and shadows as one population, runs every attack, writes results."""
  return experiment.run(SPEC, config, workdir)
