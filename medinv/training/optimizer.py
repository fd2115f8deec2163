"""The optimizer a target model trains with: Adam (AdamW when train.weight_decay > 0) at
train.learning_rate, held constant or decayed along a cosine, after an optional linear warmup.

The rate at step t is learning_rate x `unit_schedule(settings)(t)`, so the learning rate may be
a traced value (a population vmaps it: medinv.training.population) while the schedule's
shape stays static. The step count lives in the optimizer state, so a run resumed from a
checkpoint continues the schedule where it stopped. A constant rate without warmup is plain
`optax.adam(learning_rate)` / `optax.adamw(...)`, the optimizer medinv always trained with.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import optax

SCHEDULES = ('constant', 'cosine')


@dataclasses.dataclass(frozen=True)
class Settings:
  """Everything the optimizer needs but the learning rate (hashable: part of a cached
  program's key).

  weight_decay: AdamW's decoupled weight decay (0: Adam).
  schedule: one of SCHEDULES.
  warmup_steps: steps of the linear rise from 0 to the full rate.
  total_steps: the steps of the whole training run (where the cosine reaches 0).
  """
  weight_decay: float = 0.0
  schedule: str = 'constant'
  warmup_steps: int = 0
  total_steps: int = 0


def settings(train_config, num_records: int) -> Settings:
  """The Settings of config.train for a model trained on num_records records.

  Args:
    train_config: config.train (weight_decay, schedule, warmup_epochs, num_epochs,
      batch_size).
    num_records: the model's training records (an epoch is ceil(num_records / batch_size)
      steps, as medinv.training.trainer batches them, DP-SGD's Poisson batches included).

  Returns:
    The optimizer's Settings.
  """
  steps_per_epoch = math.ceil(num_records / train_config.batch_size)
  return Settings(weight_decay=float(train_config.weight_decay),
                  schedule=str(train_config.schedule),
                  warmup_steps=int(train_config.warmup_epochs) * steps_per_epoch,
                  total_steps=int(train_config.num_epochs) * steps_per_epoch)


def unit_schedule(settings: Settings) -> optax.Schedule | None:
  """The learning-rate multiplier by step, from 0 or 1 to 1 or 0; None for a constant rate.

  Args:
    settings: the optimizer's Settings.

  Returns:
    'cosine': optax.warmup_cosine_decay_schedule from 0 to 1 over warmup_steps, then to 0 at
    total_steps; 'constant' with warmup: optax.linear_schedule from 0 to 1 over warmup_steps,
    then 1; 'constant' without warmup: None.
  """
  if settings.schedule == 'cosine' and not settings.warmup_steps:
    # optax.warmup_cosine_decay_schedule's own program for an empty warmup, without the note
    # optax logs for one: the same numbers to the last bit.
    return optax.join_schedules([optax.constant_schedule(0.0),
                                 optax.cosine_decay_schedule(1.0, settings.total_steps)], [0])
  if settings.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, settings.warmup_steps,
                                              settings.total_steps)
  if settings.warmup_steps:
    return optax.linear_schedule(0.0, 1.0, settings.warmup_steps)
  return None


def make(learning_rate: float | jax.Array, settings: Settings) -> optax.GradientTransformation:
  """Adam (AdamW with settings.weight_decay) at learning_rate x `unit_schedule(settings)`.

  Args:
    learning_rate: the full rate (a float, or a traced scalar inside a population).
    settings: the optimizer's Settings.

  Returns:
    The optax transformation.
  """
  unit = unit_schedule(settings)
  rate = learning_rate if unit is None else (lambda count: learning_rate * unit(count))
  if settings.weight_decay:
    return optax.adamw(rate, weight_decay=settings.weight_decay)
  return optax.adam(rate)


def check_config(train_config) -> None:
  """Checks config.train's learning_rate, weight_decay, schedule and warmup_epochs.

  Raises:
    ValueError: naming the field and what is allowed.
  """
  if not train_config.learning_rate > 0:  # Also rejects nan.
    raise ValueError(f'train.learning_rate must be positive, got {train_config.learning_rate}')
  if not train_config.weight_decay >= 0:
    raise ValueError(f'train.weight_decay must be >= 0, got {train_config.weight_decay}')
  if train_config.schedule not in SCHEDULES:
    raise ValueError(f'train.schedule must be one of {SCHEDULES}, got '
                     f'{train_config.schedule!r}')
  warmup = train_config.warmup_epochs
  if not 0 <= warmup < train_config.num_epochs:
    raise ValueError(f'train.warmup_epochs must be in [0, train.num_epochs) = [0, '
                     f'{train_config.num_epochs}), got {warmup}')
