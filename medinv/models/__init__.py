"""Target models: a registry of named flax modules, with their split points.

`config.model` names a registered model (`medinv.models.registry`): a constructor
`(num_classes) -> flax.linen.Module` returning logits, what it takes ('records' or
'images', checked against config.data.dataset), and optionally its split points, the layers
after which hospital A hands over to hospital B in collaborative inference (model inversion,
NoPeek). This module is the one place that registers the built-ins:
  mlp        `networks.MLP`, records; no split points;
  split_cnn  `networks.SplitCNN`, images; split points 2, 4, 6 (config values) -> layers
             conv2, conv4, conv6, split by SplitCNN's own edge / cloud methods.
A model of your own is one `register` call before the experiment runs, e.g.

    class SmallCNN(nn.Module):
      num_classes: int

      @nn.compact
      def __call__(self, x):
        x = nn.relu(nn.Conv(16, (3, 3), name='block1')(x))
        x = nn.relu(nn.Conv(32, (3, 3), name='block2')(nn.max_pool(x, (2, 2), (2, 2))))
        return nn.Dense(self.num_classes, name='head')(x.reshape(x.shape[0], -1))

    models.register('small_cnn', SmallCNN, takes='images', split_points=('block1', 'block2'))
    config.model = 'small_cnn'; config.attack.splits = ('block2',)

and medinv.models.splitting splits it generically at the named layer. `build` makes the
module; `split_at` resolves a split point; `edge_fn` / `cloud_fn` / `edge_params` split any
model at a `Split` (or SplitCNN at its bare 2, 4, 6).
"""
from medinv.models import networks
from medinv.models import registry
from medinv.models import splitting
from medinv.models.networks import CONV_CHANNELS, MLP, SPLITS, SplitCNN, check_split
from medinv.models.registry import (MODELS, TAKES, Entry, build, check_fits, check_output, get,
                                    register, require_split_points, split_layer, unregister)
from medinv.models.splitting import (Split, call_order, cloud_fn, edge_fn, edge_param_names,
                                     edge_params, split_at, split_number)

__all__ = [
    'networks', 'registry', 'splitting',
    'CONV_CHANNELS', 'MLP', 'SPLITS', 'SplitCNN', 'check_split',
    'MODELS', 'TAKES', 'Entry', 'build', 'check_fits', 'check_output', 'get', 'register',
    'require_split_points', 'split_layer', 'unregister',
    'Split', 'call_order', 'cloud_fn', 'edge_fn', 'edge_param_names', 'edge_params', 'split_at',
    'split_number',
]

register('mlp', networks.MLP, takes='records')
register('split_cnn', networks.SplitCNN, takes='images',
         split_points={split: f'conv{split}' for split in networks.SPLITS},
         edge=networks.edge_fn, cloud=networks.cloud_fn)
