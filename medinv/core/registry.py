"""A name -> component map with the checks every medinv registry shares.

Attacks (per family), defenses and objective terms are registered by name; a component
carries its config defaults (`component.defaults`), from which `config_block` builds the
`config.<section>.<name>` block of an experiment config.
"""
from __future__ import annotations

from typing import Any

import ml_collections


class Registry(dict):
  """{name: component}; `kind` names what it holds in error messages ('defense', ...)."""

  def __init__(self, kind: str):
    super().__init__()
    self.kind = kind

  def add(self, name: str, component: Any, *, replace: bool = False) -> Any:
    """Registers component under name; a second registration needs replace=True."""
    if name in self and not replace:
      raise ValueError(f'{self.kind} {name!r} is already registered (pass replace=True)')
    self[name] = component
    return component

  def find(self, name: str, field: str = '') -> Any:
    """The component registered as name; ValueError (naming `field`, when given) listing the
    registered names otherwise."""
    if name not in self:
      where = f'{field}: ' if field else ''
      raise ValueError(f'{where}unknown {self.kind} {name!r}; registered: {sorted(self)}')
    return self[name]

  def config_block(self, name: str, **overrides) -> ml_collections.ConfigDict:
    """The component's config block: its registered defaults with `overrides`."""
    block = ml_collections.ConfigDict(dict(self.find(name).defaults))
    block.update(overrides)
    return block

  def resolve(self, section, name: str, section_name: str = 'attack'
              ) -> ml_collections.FrozenConfigDict:
    """name's defaults overridden by its block `section.<name>` (if any); a field the
    component does not know is a ValueError naming `<section_name>.<name>`."""
    defaults = self.find(name).defaults
    block = section.get(name) or {}
    unknown = sorted(set(block.keys()) - set(defaults))
    if unknown:
      raise ValueError(f'{section_name}.{name}: unknown fields {unknown}; known: '
                       f'{sorted(defaults)}')
    return ml_collections.FrozenConfigDict({**defaults, **dict(block)})
