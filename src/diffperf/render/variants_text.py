"""``diffperf variants`` in words: the catalogue's rows (diffperf.models.catalogue), one block per family."""

from __future__ import annotations


def variants_lines(rows: list[dict], profile: str) -> list[str]:
    """The lines to print for ``rows`` of ``profile``: a summary line, then per family a blank line, its name and
    three lines per variant (what it changes, its parameter counts, whether it runs here)."""
    families = list(dict.fromkeys(row["family"] for row in rows))
    lines = [f"profile {profile}: {len(rows)} variants of {len(families)} families ({', '.join(families)})"]
    for family in families:
        lines += ["", f"{family}:"]
        for row in (row for row in rows if row["family"] == family):
            params = ", ".join(f"{name} {count:,}" for name, count in row["parameters"].items())
            status = "runs here" if row["runs_here"] else f"skipped: {row['why_not']}"
            why = f", {row['opt_in_why']}" if row["opt_in_why"] else ""
            extra = f" (opt-in: {row['opt_in']}{why})" if row["opt_in"] and row["runs_here"] else ""
            reference = f" vs {row['reference']}" if row["reference"] else ""
            best = " (best stack: its speed-up over fp32 is shown first)" if row["best_stack"] else ""
            lines += [f"- {row['variant']}{reference} [{row['dtype']}]: {row['changes']}{best}",
                      f"    parameters: {params}",
                      f"    {status}{extra}"]
    return lines
