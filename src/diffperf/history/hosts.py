"""Many hosts' runs of one revision side by side: each speed-up per host, each judged against its own host.

The GPU workflow runs the suite on every runner kind (a matrix over runner labels) and gathers the
runs (``diffperf gather``). Each run already holds its gate's verdicts, judged in its own process
against its own host's record (or its class's portable bands): gathering judges nothing again, it
lines the verdicts up by case and host. Numbers and statuses only; diffperf.render words them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from diffperf.history.runs import HistoryError, Run

GATE_KIND = "speedups"


@dataclass(frozen=True)
class HostRun:
    """One host's run: its name, what it was judged against, and its gate's outcome."""

    host: str  # the host's fingerprint key (or its device name in a run that does not record one)
    run: Run
    judged_against: str | None  # the expectations' key, None when nothing was judged
    failed: bool


@dataclass
class HostMatrix:
    """Cases by host: ``cells[(case, host)]`` is the gate's row of that case on that host."""

    hosts: list[HostRun]
    cases: list[tuple[str | None, str]] = field(default_factory=list)  # (family, "variant vs reference/scenario")
    cells: dict[tuple[str, str], Mapping] = field(default_factory=dict)

    @property
    def failed(self) -> list[HostRun]:
        return [host for host in self.hosts if host.failed]


def host_matrix(runs: list[Run]) -> HostMatrix:
    """The speed-up verdicts of ``runs`` (one run per host) lined up by case; best stacks first in each family.

    :class:`HistoryError` when two runs come from one host (gather one run per host) or a run holds no
    gate results (run it with the gate: ``pytest perf --benchmark-json``).
    """
    hosts, seen = [], {}
    for run in runs:
        info = run.machine_info.get("diffperf") if isinstance(run.machine_info.get("diffperf"), Mapping) else {}
        host = str(info.get("host_key") or run.machine.device)
        if host in seen:
            raise HistoryError(f"{run.label} and {seen[host]} both come from {host}: gather one run per host")
        if not isinstance(run.gate, Mapping):
            raise HistoryError(f"{run.label} holds no gate results: save it from `pytest perf --benchmark-json`")
        seen[host] = run.label
        hosts.append(HostRun(host, run, run.gate.get("baseline_key"), bool(run.gate.get("failed"))))
    matrix = HostMatrix(hosts)
    ordered: dict[str, tuple[int, str | None, str]] = {}
    for host in hosts:
        for row in host.run.gate_rows(GATE_KIND):
            case = f"{row.get('variant')} vs {row.get('reference')}/{row.get('scenario')}"
            ordered.setdefault(case, (0 if row.get("best_stack") else 1, row.get("family"), case))
            matrix.cells[(case, host.host)] = row
    families = list(dict.fromkeys(family for _, family, _ in ordered.values()))
    matrix.cases = [(family, case) for best, family, case in
                    sorted(ordered.values(), key=lambda item: (families.index(item[1]), item[0]))]
    return matrix
