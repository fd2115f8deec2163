"""Writes examples/audit_your_model.ipynb from the cells below (outputs stripped): edit the
cells here, run `python examples/make_notebook.py`, commit both. tests/test_examples.py runs
the notebook and checks that this script would write it unchanged."""
import os

import nbformat

CELLS = [
    ('markdown', """# Audit a model of your own with medinv

This notebook defines two small flax models of its own (not medinv's built-ins), trains them
with its own training loop on a CSV and on images, and audits them through `medinv.api`:

2. **attribute inference** against the CSV model, given only its predict function;
3. **membership inference** from arrays: the logits of the target and of shadow models the
   notebook trained itself (what you would export from any framework);
4. **membership inference** with shadows medinv trains, for the model registered with medinv;
5. **model inversion** of the image model's features at a split point it declares.

Every audit returns a `Result`: its rows (results.csv's columns), a markdown table and figures.
`MEDINV_NOTEBOOK_WORKDIR` (default `runs/notebook`) is where the runs write."""),
    ('code', """import os
import importlib.resources

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medinv import api
from medinv.data import records as records_lib

WORKDIR = os.environ.get('MEDINV_NOTEBOOK_WORKDIR', 'runs/notebook')
os.makedirs(WORKDIR, exist_ok=True)"""),
    ('markdown', """## 1. A CSV under a declared schema

The CSV is the Cleveland heart-disease table shipped with medinv (303 records, numeric codes).
The schema declares its label, categorical columns, numeric columns with public bounds, and
the sensitive attributes; `api.load_records` builds it once as a TFDS dataset."""),
    ('code', """CSV = str(importlib.resources.files('medinv.data') / 'files' / 'heart.csv')
SCHEMA = dict(
    label='target', positive='== 1', class_names=('no disease', 'disease'),
    categorical=dict(sex=(0, 1), cp=(0, 1, 2, 3), fbs=(0, 1), restecg=(0, 1, 2), exang=(0, 1),
                     slope=(0, 1, 2), ca=(0, 1, 2, 3, 4), thal=(0, 1, 2, 3)),
    numeric=dict(age=(18, 100), trestbps=(60, 220), chol=(100, 600), thalach=(60, 220),
                 oldpeak=(0, 7)),
    sensitive=dict(sex=(), cp=(), age=(45, 55, 65)))
records = api.load_records(CSV, SCHEMA)
train, test = api.split_records(records, seed=0, test_fraction=0.2)
scaler = records_lib.Scaler.from_bounds(records.columns)  # declared bounds, no private statistic
print(len(train), 'training records,', len(test), 'held out;', [c.name for c in records.columns])"""),
    ('code', """class TinyMLP(nn.Module):
  \"\"\"The notebook's own record model: one hidden layer of 32 units.\"\"\"
  num_classes: int = 2

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes)(nn.tanh(nn.Dense(32)(x)))


def train_mlp(key, x, y, mask, steps=300):
  \"\"\"Full-batch Adam on the records where mask is 1 (our own loop, as any lab would write).\"\"\"
  model = TinyMLP()
  params = model.init(key, x[:1])['params']
  tx = optax.adam(1e-2)

  def loss_fn(params):
    losses = optax.softmax_cross_entropy_with_integer_labels(model.apply({'params': params}, x), y)
    return jnp.sum(losses * mask) / jnp.sum(mask)

  def step(carry, _):
    params, opt_state = carry
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return (optax.apply_updates(params, updates), opt_state), None
  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  return params


x_train, y_train = jnp.asarray(scaler(train.features)), jnp.asarray(train.labels)
params = train_mlp(jax.random.key(0), x_train, y_train, jnp.ones(len(train)))
predict = lambda raw: TinyMLP().apply({'params': params}, scaler(raw))
accuracy = np.mean(np.argmax(predict(test.features), -1) == test.labels)
print(f'TinyMLP test accuracy {accuracy:.3f}')"""),
    ('markdown', """## 2. Attribute inference from a predict function

The attacker knows a patient's record except one sensitive attribute, and the label the
deployed model releases; randomized response flips that label with probability p.
`predict` maps raw records to logits (a NumPy function works too: `jax_traceable=False`)."""),
    ('code', """attribute = api.audit_attribute(predict, train, test, sensitive=('sex', 'cp', 'age'),
                                workdir=f'{WORKDIR}/attribute', flip_probs=(0.0, 0.3))
attribute"""),
    ('code', """best = max((r for r in attribute.rows if r['flip_prob'] == 0 and r['targets'] == 'members'),
           key=lambda r: r['advantage'])
print(f"strongest: {best['attack']} ({best['variant']}) on {best['attribute']}: accuracy "
      f"{best['attack_accuracy']:.3f}, {best['advantage']:+.3f} over the best no-model baseline")
attribute.figures"""),
    ('markdown', """## 3. Membership inference from arrays (a model from any framework)

We train the target and 8 shadows ourselves, each on a random half of the 242 training records
(vmapped: one program), and hand medinv their logits and the membership matrix (row 0: the
target). Nothing medinv-specific touches the training."""),
    ('code', """num_shadows = 8
target_half = np.asarray(jax.random.bernoulli(jax.random.key(1), 0.5, (len(train),)))
halves = np.asarray(jax.random.bernoulli(jax.random.key(2), 0.5, (num_shadows // 2, len(train))))
shadow_halves = np.stack([halves, ~halves], axis=1).reshape(num_shadows, -1)  # paired: each
membership = np.concatenate([target_half[None], shadow_halves])  # record IN for half of them
keys = jax.random.split(jax.random.key(3), num_shadows + 1)
population = jax.vmap(train_mlp, in_axes=(0, None, None, 0))(keys, x_train, y_train,
                                                             jnp.asarray(membership, jnp.float32))
logits = np.asarray(jax.vmap(lambda p: TinyMLP().apply({'params': p}, x_train))(population))
scored = api.score_membership(train.labels, membership.astype(int), target_logits=logits[0],
                              shadow_logits=logits[1:], bootstrap_samples=200)
scored"""),
    ('markdown', """## 4. Membership inference with shadows medinv trains

Registered with medinv, the same TinyMLP is a target model like the built-ins: medinv trains
the target and its shadows in one program (vmapped) on the CSV and runs every attack, under
a defense too (randomized response on a label-only release)."""),
    ('code', """from configs import membership_heart
from medinv import models

models.register('tiny_mlp', lambda num_classes: TinyMLP(num_classes), takes='records',
                replace=True)
config = membership_heart.get_config('smoke')  # 4 shadows, one strength per defense
config.model = 'tiny_mlp'
config.data.update(dataset='csv', path=CSV, schema=SCHEMA)
config.train.update(num_epochs=30, learning_rate=3e-3)
config.defense.names = ('randomized_response',)
config.evaluation.subgroups = ('label', 'sex')
membership = api.membership_inference(config, f'{WORKDIR}/membership')
membership"""),
    ('markdown', """## 5. Model inversion at a split point of your own

A small CNN trained on BreastMNIST (780 ultrasound images, shipped with medinv) by our own
loop. Registered with its split points, hospital A runs it up to `block2` and sends the
features; the attacker, holding images of its own, learns to invert them."""),
    ('code', """from configs import inversion_breastmnist
from medinv import data

class TinyCNN(nn.Module):
  num_classes: int = 2

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(8, (3, 3), name='block1')(x))
    x = nn.relu(nn.Conv(16, (3, 3), name='block2')(nn.max_pool(x, (2, 2), (2, 2))))
    return nn.Dense(self.num_classes, name='head')(x.reshape(x.shape[0], -1))


models.register('tiny_cnn', lambda num_classes: TinyCNN(num_classes), takes='images',
                split_points=('block1', 'block2'), replace=True)
images = data.load_images('breastmnist', image_size=16)
(x_img, y_img), (x_held, y_held) = images.train, images.test
cnn = TinyCNN()
cnn_params = cnn.init(jax.random.key(0), x_img[:1])['params']
tx = optax.adam(1e-2)

def cnn_step(carry, _):
  params, opt_state = carry
  grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
      cnn.apply({'params': p}, x_img), y_img).mean())(params)
  updates, opt_state = tx.update(grads, opt_state)
  return (optax.apply_updates(params, updates), opt_state), None
(cnn_params, _), _ = jax.lax.scan(cnn_step, (cnn_params, tx.init(cnn_params)), None, length=40)
held_accuracy = np.mean(np.argmax(cnn.apply({'params': cnn_params}, x_held), -1) == y_held)
print(f'TinyCNN test accuracy {held_accuracy:.3f}')"""),
    ('code', """config = inversion_breastmnist.get_config('smoke')
inversion_breastmnist.keep_core(config)  # model perturbation only
config.data.image_size = 16
config.attack.update(splits=('block2',), names=('inverse_network',), num_targets=8,
                     figure_targets=8, knows_defense=(True,))
config.defense.model_perturbation.modes = ('fixed',)
inversion = api.audit_inversion('tiny_cnn', cnn_params, (x_img, y_img), (x_held, y_held), config,
                                f'{WORKDIR}/inversion', class_names=images.class_names)
inversion"""),
]


def notebook():
  nb = nbformat.v4.new_notebook()
  nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3',
                               'language': 'python'}
  for kind, source in CELLS:
    nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == 'markdown'
                    else nbformat.v4.new_code_cell(source))
  for i, cell in enumerate(nb.cells):
    cell['id'] = f'cell-{i}'
  return nb


PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'audit_your_model.ipynb')

if __name__ == '__main__':
  nbformat.write(notebook(), PATH)
  print(f'wrote {PATH}')
