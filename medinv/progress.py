"""Progress lines for long runs: stage, counts, elapsed and estimated time left.

`quiet_library_logs()` keeps absl INFO logging readable by dropping orbax's and TFDS's
per-call chatter (their warnings and errors still show).
"""
from __future__ import annotations

import logging as std_logging
import sys
import time

_NOISY = ('/orbax/', '/tensorflow_datasets/', '/etils/')


class _DropLibraryInfo(std_logging.Filter):

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or not any(
        part in record.pathname for part in _NOISY)


def quiet_library_logs() -> None:
  logger = std_logging.getLogger('absl')
  for handler in logger.handlers + std_logging.getLogger().handlers:
    handler.addFilter(_DropLibraryInfo())
  logger.addFilter(_DropLibraryInfo())


def format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  return f'{seconds // 60}m{seconds % 60:02d}s' if seconds >= 60 else f'{seconds}s'


class Stages:
  """Prints '[i/n] name ... elapsed, ~eta left' as a run moves through weighted stages."""

  def __init__(self, names: list[str], weights: list[float] | None = None, stream=None):
    self.names = list(names)
    self.weights = list(weights or [1.0] * len(names))
    self.done_weight = 0.0
    self.start = time.time()
    self.stream = stream or sys.stdout

  def _print(self, text: str) -> None:
    print(text, file=self.stream, flush=True)

  def begin(self, index: int, detail: str = '') -> None:
    elapsed = time.time() - self.start
    line = f'[{index + 1}/{len(self.names)}] {self.names[index]}'
    if detail:
      line += f': {detail}'
    line += f'  (elapsed {format_seconds(elapsed)}'
    if self.done_weight > 0:
      remaining = sum(self.weights[index:]) / self.done_weight * elapsed
      line += f', ~{format_seconds(remaining)} left'
    self._print(line + ')')

  def end(self, index: int, detail: str = '') -> None:
    self.done_weight += self.weights[index]
    self._print(f'      done {self.names[index]}{": " + detail if detail else ""} '
                f'(elapsed {format_seconds(time.time() - self.start)})')
