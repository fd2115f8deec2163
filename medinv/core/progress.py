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


UNMEASURED = 'time left: after the first part'  # no pace measured yet in this run


class Stages:
  """Prints '[k/n] name ... elapsed, ~eta left' as a run moves through weighted stages.

  Weights are each stage's units of work, relative to one another (`runners.Runner.weight`,
  computed from each part's config); they are not seconds. The time left is the work left x
  the pace measured in this run: the seconds per unit of work over the stages finished so
  far, each timed from its own begin (reused or skipped stages did no work and stay out).
  Until a stage with work has finished, no figure is given (`UNMEASURED`): a pace from
  another machine would only mislead. With `workers` > 1, stages run side by side (and the
  measured pace includes how much they slow each other): the time left is the makespan of
  the running stages' expected rest and the stages not begun, each begun on the first free
  worker in `order` (the heaviest first).
  """

  def __init__(self, names: list[str], weights: list[float] | None = None, stream=None,
               workers: int = 1):
    self.names = list(names)
    self.weights = list(weights or [1.0] * len(names))
    self.workers = max(1, int(workers))
    self.start = time.time()
    self.began: dict[int, float] = {}  # running stages: index -> begin time
    self.finished: set[int] = set()
    self.paced_seconds = self.paced_weight = 0.0
    self.stream = stream or sys.stdout

  @property
  def order(self) -> list[int]:
    """The order stages begin in: as given with one worker, else the heaviest first."""
    indices = list(range(len(self.names)))
    return indices if self.workers == 1 else sorted(indices, key=lambda i: -self.weights[i])

  def _print(self, text: str) -> None:
    print(text, file=self.stream, flush=True)

  def pace(self) -> float | None:
    """Seconds per unit of work measured so far; None before a stage with work has finished."""
    return self.paced_seconds / self.paced_weight if self.paced_weight > 0 else None

  def remaining(self) -> float | None:
    """Expected seconds until every stage has finished (None while the pace is unmeasured)."""
    now, pace = time.time(), self.pace()
    if pace is None:
      return None
    free_at = sorted(max(self.weights[i] * pace - (now - began), 0.0)
                     for i, began in self.began.items())
    free_at = (free_at + [0.0] * self.workers)[:max(self.workers, len(free_at))]
    for i in self.order:
      if i not in self.began and i not in self.finished:
        free_at[free_at.index(min(free_at))] += self.weights[i] * pace
    return max(free_at)

  def time_left(self) -> str:
    """'~1m05s left', or `UNMEASURED` before the pace is known."""
    remaining = self.remaining()
    return UNMEASURED if remaining is None else f'~{format_seconds(remaining)} left'

  def begin(self, index: int, detail: str = '') -> None:
    elapsed = time.time() - self.start
    count = len(self.began) + len(self.finished) + 1
    line = f'[{count}/{len(self.names)}] {self.names[index]}'
    if detail:
      line += f': {detail}'
    line += f'  (elapsed {format_seconds(elapsed)}, {self.time_left()})'
    self._print(line)
    self.began[index] = time.time()

  def end(self, index: int, detail: str = '', *, reused: bool = False) -> None:
    """Ends stage `index`; a reused (or skipped) stage did no work: its time and weight stay
    out of the pace."""
    began = self.began.pop(index)
    self.finished.add(index)
    if reused:
      self.weights[index] = 0.0
    else:
      self.paced_seconds += time.time() - began
      self.paced_weight += self.weights[index]
    self._print(f'      done {self.names[index]}{": " + detail if detail else ""} '
                f'(elapsed {format_seconds(time.time() - self.start)})')
