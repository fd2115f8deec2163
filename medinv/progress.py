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
  """Prints '[i/n] name ... elapsed, ~eta left' as a run moves through weighted stages.

  Weights are each stage's expected seconds on a 2-core CPU (`runners.Runner.weight`): the
  first estimate reads them as seconds, later ones scale them by the pace measured so far.
  """

  def __init__(self, names: list[str], weights: list[float] | None = None, stream=None):
    self.names = list(names)
    self.weights = list(weights or [1.0] * len(names))
    self.done_weight = 0.0
    self.start = self.began = time.time()
    self.skipped_seconds = 0.0
    self.stream = stream or sys.stdout

  def _print(self, text: str) -> None:
    print(text, file=self.stream, flush=True)

  def remaining(self, index: int) -> float:
    """Seconds left before stage `index`: the weights left, scaled by this run's pace so far
    (elapsed / weight done) once a stage has run, else taken as seconds."""
    left = sum(self.weights[index:])
    if self.done_weight > 0:
      return left * (time.time() - self.start - self.skipped_seconds) / self.done_weight
    return left

  def begin(self, index: int, detail: str = '') -> None:
    elapsed = time.time() - self.start
    line = f'[{index + 1}/{len(self.names)}] {self.names[index]}'
    if detail:
      line += f': {detail}'
    line += f'  (elapsed {format_seconds(elapsed)}, ~{format_seconds(self.remaining(index))} left)'
    self._print(line)
    self.began = time.time()

  def end(self, index: int, detail: str = '', *, reused: bool = False) -> None:
    """Ends stage `index`; a reused (or skipped) stage took no compute: its time and weight
    stay out of the pace."""
    if reused:
      self.skipped_seconds += time.time() - self.began
      self.weights[index] = 0.0
    self.done_weight += self.weights[index]
    self._print(f'      done {self.names[index]}{": " + detail if detail else ""} '
                f'(elapsed {format_seconds(time.time() - self.start)})')
