"""The optimizer: schedules equal optax's, the constant rate is today's Adam, config errors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import common
from medinv.training import optimizer


def _updates(tx, steps=12):
  """The updates tx makes over `steps` steps of a fixed quadratic's gradients."""
  params = {'w': jnp.array([1.0, -2.0, 0.5])}
  state = tx.init(params)
  out = []
  for _ in range(steps):
    grads = jax.tree.map(lambda p: 2.0 * p, params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    out.append(np.asarray(updates['w']))
  return np.stack(out)


def test_settings_count_steps_per_epoch():
  train = common.train_config(num_epochs=10, batch_size=32, warmup_epochs=2, schedule='cosine',
                              weight_decay=1e-4)
  settings = optimizer.settings(train, 546)  # ceil(546 / 32) = 18 steps an epoch.
  assert settings == optimizer.Settings(weight_decay=1e-4, schedule='cosine', warmup_steps=36,
                                        total_steps=180)


@pytest.mark.parametrize('warmup_steps', [0, 3])
def test_cosine_schedule_reaches_optax_values(warmup_steps):
  settings = optimizer.Settings(schedule='cosine', warmup_steps=warmup_steps, total_steps=12)
  reference = optax.warmup_cosine_decay_schedule(0.0, 3e-3, warmup_steps, 12)
  unit = optimizer.unit_schedule(settings)
  for step in range(14):
    assert 3e-3 * float(unit(step)) == pytest.approx(float(reference(step)), rel=1e-6, abs=1e-12)
  assert float(unit(12)) == 0.0 and float(unit(warmup_steps)) == pytest.approx(1.0)
  # The optimizer applies it: Adam's updates equal optax.adam with optax's schedule.
  np.testing.assert_allclose(_updates(optimizer.make(3e-3, settings)),
                             _updates(optax.adam(reference)), rtol=1e-6, atol=1e-9)


def test_warmup_then_constant():
  settings = optimizer.Settings(schedule='constant', warmup_steps=4, total_steps=12)
  unit = optimizer.unit_schedule(settings)
  assert [float(unit(s)) for s in (0, 1, 2, 4, 11)] == [0.0, 0.25, 0.5, 1.0, 1.0]
  reference = optax.adamw(optax.linear_schedule(0.0, 1e-3, 4), weight_decay=0.1)
  np.testing.assert_allclose(
      _updates(optimizer.make(1e-3, optimizer.Settings(0.1, 'constant', 4, 12))),
      _updates(reference), rtol=1e-6, atol=1e-9)


def test_constant_rate_is_plain_adam_and_adamw():
  assert optimizer.unit_schedule(optimizer.Settings(total_steps=12)) is None
  for weight_decay, reference in ((0.0, optax.adam(1e-3)),
                                  (1e-2, optax.adamw(1e-3, weight_decay=1e-2))):
    tx = optimizer.make(1e-3, optimizer.Settings(weight_decay=weight_decay, total_steps=12))
    np.testing.assert_array_equal(_updates(tx), _updates(reference))
    # The same state layout as before schedules existed: old checkpoints restore.
    params = {'w': jnp.zeros(3)}
    assert (jax.tree.structure(tx.init(params)) ==
            jax.tree.structure(reference.init(params)))


def test_traced_learning_rate_under_vmap_equals_each_rate():
  """A population vmaps the learning rate through the schedule (medinv.training.population)."""
  settings = optimizer.Settings(schedule='cosine', warmup_steps=2, total_steps=8)
  params = {'w': jnp.array([1.0, -2.0])}

  def first_update(rate):
    tx = optimizer.make(rate, settings)
    state = tx.init(params)
    for _ in range(3):
      updates, state = tx.update(params, state, params)
    return updates['w']

  rates = jnp.array([1e-3, 3e-3])
  vmapped = jax.vmap(first_update)(rates)
  for i, rate in enumerate((1e-3, 3e-3)):
    np.testing.assert_allclose(vmapped[i], first_update(rate), rtol=1e-6)


@pytest.mark.parametrize('field, value, message', [
    ('learning_rate', 0.0, 'train.learning_rate must be positive'),
    ('learning_rate', float('nan'), 'train.learning_rate must be positive'),
    ('weight_decay', -1e-4, 'train.weight_decay must be >= 0'),
    ('schedule', 'linear', r"train.schedule must be one of \('constant', 'cosine'\)"),
    ('warmup_epochs', 10, r'train.warmup_epochs must be in \[0, train.num_epochs\) = \[0, 10\)'),
    ('warmup_epochs', -1, 'train.warmup_epochs must be in'),
])
def test_config_errors_name_the_field(field, value, message):
  train = common.train_config(num_epochs=10)
  train[field] = value
  with pytest.raises(ValueError, match=message):
    optimizer.check_config(train)
