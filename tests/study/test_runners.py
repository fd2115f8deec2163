"""The study's runners (medinv.study.runners): each part's units of work, computed from its
config, grow with the work the config asks for (the time-left estimate's weights; their
seconds per unit are measured in each run, tests/core/test_progress.py)."""
from configs import demo
from configs import membership_breastmnist
from medinv.study import runners


def _work(name, part) -> float:
  return runners.for_part(name).weight_of(part)


def test_units_of_work_grow_with_what_the_config_asks_for():
  parts = demo.get_config().parts
  base = {name: _work(name, part) for name, part in parts.items()}
  assert all(work > 0 for work in base.values())
  inversion = parts.inversion_breastmnist
  inversion.attack.knows_defense = (True,)
  one_view = _work('inversion_breastmnist', inversion)
  assert one_view < base['inversion_breastmnist']
  inversion.attack.splits = (4,)
  one_split = _work('inversion_breastmnist', inversion)
  inversion.attack.splits = (2, 4, 6)
  assert one_split < one_view == _work('inversion_breastmnist', inversion)
  inversion.attack.splits_of.feature_alignment = (2, 4, 6)  # every split, not only 4
  three_splits = _work('inversion_breastmnist', inversion)
  assert one_view < three_splits
  inversion.defense.model_perturbation.num_draws = 3
  three_draws = _work('inversion_breastmnist', inversion)
  inversion.attack.rmle.steps *= 10
  assert three_splits < three_draws < _work('inversion_breastmnist', inversion)
  parts.attribute_heart.attack.sensitive = ('sex',)
  assert _work('attribute_heart', parts.attribute_heart) < base['attribute_heart']
  membership = membership_breastmnist.get_config()
  membership.membership.num_shadows *= 2
  before = _work('membership_breastmnist', membership_breastmnist.get_config())
  assert _work('membership_breastmnist', membership) > before
