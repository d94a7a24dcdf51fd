"""How a process starts its session: the part of a run that differs between a process that judges (a run without
``-n``, or pytest-xdist's controller) and a pytest-xdist worker.

diffperf.plugin.DiffperfPlugin builds the session (diffperf.session.PerfSession) through one of two starts, each with
the same three methods:

* ``session_options(options)``: the options the session is built with;
* ``started(session)``: what happens once it is built, before anything is measured;
* ``cases_collected(start_session)``: what happens once the run's cases are collected (``start_session`` builds the
  session, once).

:class:`CheckedStart` is the start of a process that judges; the worker's is
:class:`diffperf.wiring.worker.XdistWorker`, which places the session on its own device and leaves the checks to the
controller's gate.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from diffperf.options import PerfOptions


class CheckedStart:
    """A process that judges its run builds the session as soon as its cases are collected, and what they cannot do
    stops the run there, before anything is measured (diffperf.session.PerfSession.check_run)."""

    def session_options(self, options: PerfOptions) -> PerfOptions:
        return options

    def started(self, session) -> None:
        """Check the run; a one-line stop with pytest's usage-error status, or for stored expectations that cannot be
        read the gate's own line and status (diffperf.run_end.unreadable_expectations)."""
        from diffperf.gate.expectations import ExpectationsError
        from diffperf.run_end import unreadable_expectations

        try:
            session.check_run()
        except ExpectationsError as error:
            line, status = unreadable_expectations(str(error), session.profile_name, session.options)
            pytest.exit(f"diffperf: {line}", returncode=status)
        except ValueError as error:
            pytest.exit(f"diffperf: {error}", returncode=pytest.ExitCode.USAGE_ERROR)

    def cases_collected(self, start_session: Callable[[], object]) -> None:
        start_session()
