"""How many rounds a latency case gets: the profile's defaults, the early look, the looks of ``--perf-max-rounds``
and the run's time for extra rounds, with the one rule that says when a case stops (:meth:`RoundPolicy.decide`).

Rounds go where they can change the verdict. A case with an early look (``--perf-min-rounds``) is judged after
its first rounds as the gate will judge it, and a settled case (:func:`diffperf.gate.verdicts.settled`) stops
there; any other gets the rest of its base rounds. With ``--perf-max-rounds`` a sequential plan
(:mod:`diffperf.stats.sequential`) then looks again after each stage of extra rounds while the verdict stays
undecided (:func:`diffperf.gate.verdicts.undecided`) and ``--perf-extra-time`` is not spent. The latency case
(:mod:`diffperf.cases.latency`) and the simulation of the rule (:mod:`diffperf.gate.simulation`) both follow it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass

from diffperf.gate.verdicts import CONFIDENCE, GateRow, settled, undecided
from diffperf.stats.ratios import min_pairs
from diffperf.stats.sequential import SequentialPlan

DEFAULT_ROUNDS = {"tiny": 16, "short": 10, "full": 10, "hub": 10}
# GPUs pay cuDNN heuristics, allocator growth and lazy initialisation on the first calls; short's calls are a fifth
# as long, and its budget is a pull request's.
DEFAULT_WARMUP = {"tiny": 2, "short": 2, "full": 3, "hub": 3}
# The early look (--perf-min-rounds): on tiny, whose CPU rounds are most of the suite's wall time, and on short,
# the pull-request gate, whose time is its budget; full and hub keep every round.
DEFAULT_MIN_ROUNDS = {"tiny": 10, "short": 6}


@dataclass(frozen=True)
class Looks:
    """Where a case's speed-up was looked at (the early look, --perf-max-rounds): the rounds at each look, and the
    last one's confidence, which the gate judges at."""

    rounds: list[int]
    confidence: float

    def to_json(self) -> dict:
        return {"rounds": self.rounds, "confidence": self.confidence}


@dataclass
class RoundPolicy:
    """The rounds of a run's latency cases: ``rounds`` base rounds, ``min_rounds`` before the early look (equal to
    ``rounds`` when there is none), ``warmup`` untimed pairs before them, the ``sequential`` plan of
    --perf-max-rounds' looks (None without one) and the seconds left for extra rounds (``extra_time_left``,
    --perf-extra-time; None: no limit).

    Only ``extra_time_left`` changes once built: :meth:`decide` spends it.
    """

    rounds: int
    min_rounds: int
    warmup: int
    sequential: SequentialPlan | None = None
    extra_time_left: float | None = None

    def __post_init__(self):
        if not 1 <= self.min_rounds <= self.rounds:
            raise ValueError(f"the early look needs 1 <= min_rounds <= rounds, got min_rounds {self.min_rounds}, "
                             f"rounds {self.rounds}")
        if self.sequential is not None and self.sequential.base != self.rounds:
            raise ValueError(f"the sequential plan's first look ({self.sequential.base}) must be at the base rounds "
                             f"({self.rounds})")

    def __setattr__(self, name: str, value) -> None:
        if name != "extra_time_left" and name in self.__dict__:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super().__setattr__(name, value)

    @classmethod
    def for_profile(cls, profile: str, rounds: int | None = None, min_rounds: int | None = None,
                    warmup: int | None = None, max_rounds: int | None = None,
                    extra_time: float | None = None) -> "RoundPolicy":
        """The policy of a run on ``profile`` (``tiny``, ``full`` or ``hub``) from the values of --perf-rounds,
        --perf-min-rounds, --perf-warmup, --perf-max-rounds and --perf-extra-time (None: not given); a one-line
        ValueError when --perf-min-rounds or --perf-max-rounds does not fit the profile's rounds.

        The early look is the profile's (:data:`DEFAULT_MIN_ROUNDS`) unless --perf-min-rounds names it;
        --perf-rounds alone means every case gets that many.
        """
        base = rounds or DEFAULT_ROUNDS[profile]
        if min_rounds is not None and min_rounds > base:
            raise ValueError(f"--perf-min-rounds {min_rounds} is more than the {profile} profile's {base} rounds: "
                             f"give at most {base}")
        early = min_rounds or (base if rounds else min(DEFAULT_MIN_ROUNDS.get(profile, base), base))
        if max_rounds is not None and max_rounds < base:
            raise ValueError(f"--perf-max-rounds {max_rounds} is fewer than the {profile} profile's {base} rounds: "
                             f"give at least {base}")
        plan = SequentialPlan.for_rounds(base, max_rounds) if max_rounds is not None and max_rounds > base else None
        if plan is not None and min_pairs(plan.confidence_at(base)) > base:
            needed = next(rounds for rounds in range(base, max_rounds + 1)
                          if min_pairs(SequentialPlan.for_rounds(rounds, max_rounds).confidence_at(rounds)) <= rounds)
            raise ValueError(f"--perf-max-rounds {max_rounds}: its first look, at {base} rounds, is at "
                             f"{plan.confidence_at(base):.2%} and needs at least {min_pairs(plan.confidence_at(base))} "
                             f"rounds for an interval: give --perf-rounds {needed} or more, or no --perf-max-rounds")
        return cls(base, early, DEFAULT_WARMUP[profile] if warmup is None else warmup, plan, extra_time)

    def has_looks(self) -> bool:
        """Whether a case's speed-up is looked at before it ends: an early look, or --perf-max-rounds' looks."""
        return self.sequential is not None or self.min_rounds < self.rounds

    def first_rounds(self, looks: bool) -> int:
        """The rounds a case times before its first look (``looks``: the case has looks), else all its rounds."""
        return self.min_rounds if looks else self.rounds

    def round_counts(self) -> list[int]:
        """The rounds a timed case can end with: the early look's, the base rounds, the plan's later looks."""
        early = [self.min_rounds] if self.min_rounds < self.rounds else []
        return early + (self.sequential.looks() if self.sequential is not None else [self.rounds])

    def planned_rounds(self, looks: bool) -> tuple[int, int]:
        """The fewest and the most timed rounds a case ends with (``looks``: the case has looks)."""
        if not looks:
            return self.rounds, self.rounds
        return self.min_rounds, self.sequential.maximum if self.sequential is not None else self.rounds

    def decide(self, done: int, judge: Callable[[int, float], GateRow], extend: Callable[[int], float]) -> Looks:
        """The looks of one case that has timed ``done`` rounds (:meth:`first_rounds`); ``judge(rounds, confidence)``
        is the gate's speed-up row (:func:`diffperf.gate.verdicts.speedup_row`) for the first ``rounds`` pairs, and
        ``extend(n)`` times ``n`` more pairs and returns the seconds they took.

        A case with an early look (``done`` below the base rounds) is judged at the gate's 95%: settled, it stops;
        otherwise it gets the rest of its base rounds. The early look never ends a case regressed or improved, so
        it leaves the false-alarm rate as it was; the intervals of the cases it stops are 95% ones, outside the
        plan's spending. Then, with a plan, each look is judged at the confidence the plan spends on it; while the
        verdict stays undecided, the plan has a look left and the extra time is not spent, the case gets the next
        stage, whose seconds come off ``extra_time_left`` (the base rounds' do not).
        """
        looked = [done]
        if done < self.rounds:
            if settled(judge(done, CONFIDENCE)):
                return Looks(looked, CONFIDENCE)
            extend(self.rounds - done)
            looked.append(self.rounds)
        plan = self.sequential
        if plan is None:
            return Looks(looked, CONFIDENCE)
        while True:
            confidence = plan.confidence_at(looked[-1])
            following = plan.next_look(looked[-1])
            if not undecided(judge(looked[-1], confidence)) or following is None \
                    or (self.extra_time_left is not None and self.extra_time_left <= 0):
                return Looks(looked, confidence)
            spent = extend(following - looked[-1])
            if self.extra_time_left is not None:
                self.extra_time_left -= spent
            looked.append(following)
