"""Expectations from published figures, for a GPU of the kind they were published for that has no calibration.

A GPU's first run has nothing of its own to be judged against until ``diffperf calibrate`` has
measured it over several processes (about an hour on the ``full`` profile). Where a figure was
published for the case on this kind of GPU (:class:`diffperf.models.variants.Published`: the
source documents' A100 tables for SD v1), the gate judges the speed-up against it meanwhile, with
a wide band: :data:`TOLERANCE` stands for what differs between the published setup and this one
(another host of that GPU kind, other torch, diffusers and driver versions, and the documents'
own timing: 3 runs, no warm-up, no synchronisation), and :data:`ASSUMED_SPREAD` for the
between-process spread no calibration has measured yet. Both are stated, not measured; the verdict
line says the run was judged against published figures, and a calibration replaces them.
"""

from __future__ import annotations

from diffperf.gate.expectations import PUBLISHED, Expectation, Expectations, case_id
from diffperf.stats.ratios import ProcessSpread
from diffperf.gate.verdicts import CaseResult
from diffperf.measure.host import Host

TOLERANCE = 0.15
ASSUMED_RUN_SD = 0.02  # ln units: a 2% spread of one process's median ratio, as if from 5 processes
ASSUMED_PROCESSES = 5


def assumed_spread(expected: float) -> ProcessSpread:
    """The between-process spread a published figure is judged with: stated, not measured."""
    return ProcessSpread(expected, ASSUMED_RUN_SD, ASSUMED_RUN_SD, ASSUMED_PROCESSES, 0.0)


def published_expectations(results: list[CaseResult], host: Host) -> Expectations | None:
    """Expectations from the figures published for this host's GPU kind, or None when there are none."""
    if host.device_type != "cuda":
        return None
    here = host.label.lower()
    judged = [result for result in results
              if result.published and result.reference and result.published_on and result.published_on.lower() in here]
    if not judged:
        return None
    speedups = {case_id(result.variant, result.scenario): Expectation(result.reference, result.published, TOLERANCE,
                                                                      assumed_spread(result.published), floor=True)
                for result in judged}
    gpus = sorted({result.published_on for result in judged})
    return Expectations(key=f"published figures ({', '.join(gpus)})", source=PUBLISHED, calibration={},
                        speedups=speedups, memory={})
