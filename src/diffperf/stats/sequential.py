"""Rounds only where undecided: a group-sequential plan that spends the error over its looks.

With ``--perf-max-rounds``, a case's speed-up is looked at after its base rounds and, while it
stays inconclusive and more rounds could decide it, again after each stage of extra rounds, up to
the maximum. Looking several times and stopping once decided ("optional stopping") raises the
chance that the interval of *some* look misses the true ratio: at 95% per look, three looks miss
it up to three times as often. The plan spends the allowed error ``alpha = 1 - confidence`` over
its looks instead (Lan and DeMets' alpha spending): the look at ``n`` of at most ``N`` rounds uses
confidence ``1 - (f(n / N) - f(n_before / N))`` with the Pocock-type spending function
``f(t) = alpha * ln(1 + (e - 1) t)``, which spends most of the error early, where most cases stop.
By the union bound, the chance that any look's interval misses the true ratio is at most
``f(1) = alpha``, whatever the correlation between looks: the rounds of one process share that
process's offset, which a boundary computed for independent increments would not allow for.

Numbers only; the round policy (:class:`diffperf.gate.rounds.RoundPolicy`) decides when to look, the gate judges at
the last look's confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def spent(fraction: float, alpha: float) -> float:
    """Error spent by the information fraction ``fraction`` (0 to 1): Pocock-type, ``alpha * ln(1 + (e - 1) t)``."""
    fraction = min(max(fraction, 0.0), 1.0)
    return alpha * math.log(1 + (math.e - 1) * fraction)


@dataclass(frozen=True)
class SequentialPlan:
    """Looks after ``base`` rounds, then every ``stage`` rounds, up to ``maximum``, at overall ``confidence``."""

    base: int
    maximum: int
    stage: int
    confidence: float = 0.95

    def __post_init__(self):
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence}")
        if self.base < 1 or self.stage < 1 or self.maximum < self.base:
            raise ValueError(f"a sequential plan needs 1 <= base <= maximum and a stage of at least 1 round, got "
                             f"base {self.base}, maximum {self.maximum}, stage {self.stage}")

    @classmethod
    def for_rounds(cls, base: int, maximum: int, confidence: float = 0.95) -> "SequentialPlan":
        """Stages of half the base rounds (at least 2): a few looks, each with enough new rounds to move the median."""
        return cls(base, maximum, max(2, base // 2), confidence)

    def looks(self) -> list[int]:
        """The round counts at which the verdict is looked at: base, base + stage, ..., maximum."""
        counts = list(range(self.base, self.maximum, self.stage))
        return counts + [self.maximum]

    def confidence_at(self, rounds: int) -> float:
        """The confidence of the look after ``rounds`` rounds (one of :meth:`looks`)."""
        looks = self.looks()
        if rounds not in looks:
            raise ValueError(f"{rounds} rounds is not a look of this plan ({', '.join(map(str, looks))})")
        if len(looks) == 1:
            return self.confidence
        alpha = 1 - self.confidence
        index = looks.index(rounds)
        before = looks[index - 1] / self.maximum if index else 0.0
        return 1 - (spent(rounds / self.maximum, alpha) - spent(before, alpha))

    def next_look(self, rounds: int) -> int | None:
        """The round count of the look after ``rounds``, None after the last."""
        later = [count for count in self.looks() if count > rounds]
        return later[0] if later else None
