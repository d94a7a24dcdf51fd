"""The ``diffperf`` command line: ``diffperf variants``, and the saved-run commands ``compare``,
``trend`` and ``report`` (docs/history.md).

Exit status: 0 done, 1 a regression with ``compare --fail-on-regression``, 2 bad input (one line on
stderr, no traceback)."""

from __future__ import annotations

import argparse
import json
import sys

from diffperf.profiles import PROFILE_NAMES


def variants_table(profile: str, device_name: str | None = None) -> list[dict]:
    """Each variant: what it changes, its components' parameter counts, whether it runs here and why not."""
    import torch

    from diffperf import zoo
    from diffperf.bksdm import derive_student
    from diffperf.options import PerfOptions
    from diffperf.variants import VARIANTS, skip_reason

    device = PerfOptions(device=device_name).resolved_device()
    source = zoo.make_source(profile, torch.device("meta"))
    counts = {}
    for component in zoo.COMPONENTS:
        if component == zoo.DISTILLED_UNET and source.derives_students:
            module = derive_student(source.build(zoo.TEACHER_UNET, meta=True), "small", meta=True)
        else:
            module = source.build(component, meta=True)
        counts[component] = zoo.count_parameters(module)
    rows = []
    for variant in VARIANTS:
        reason = skip_reason(variant, device, frozenset({variant.opt_in}) if variant.opt_in else frozenset())
        rows.append({
            "variant": variant.name,
            "changes": variant.description,
            "reference": variant.reference,
            "dtype": variant.dtype,
            "parameters": {component: counts[component] for component in variant.components},
            "runs_here": reason is None,
            "why_not": reason,
            "opt_in": variant.opt_in,
        })
    return rows


def _print_variants(rows: list[dict], profile: str) -> None:
    print(f"profile {profile}: {len(rows)} variants")
    for row in rows:
        params = ", ".join(f"{name} {count:,}" for name, count in row["parameters"].items())
        status = "runs here" if row["runs_here"] else f"skipped: {row['why_not']}"
        extra = f" (opt-in: {row['opt_in']})" if row["opt_in"] and row["runs_here"] else ""
        reference = f" vs {row['reference']}" if row["reference"] else ""
        print(f"- {row['variant']}{reference} [{row['dtype']}]: {row['changes']}")
        print(f"    parameters: {params}")
        print(f"    {status}{extra}")


def _cmd_variants(args) -> int:
    from diffperf.zoo import ModelNotAvailable

    try:
        rows = variants_table(args.profile, args.device)
    except (ValueError, ModelNotAvailable) as error:
        print(f"diffperf: {error}", file=sys.stderr)
        return 2
    if args.json:
        json.dump({"profile": args.profile, "variants": rows}, sys.stdout, indent=2)
        print()
    else:
        _print_variants(rows, args.profile)
    return 0


# ---- saved runs: compare, trend, report -----------------------------------------------------------

def _warn(message: str) -> None:
    print(f"diffperf: warning: {message}", file=sys.stderr)


def _history_command(handler):
    """Run ``handler(args)``; bad input (HistoryError, unwritable output) is one line and exit 2."""
    def run(args) -> int:
        from diffperf.history import HistoryError

        try:
            return handler(args)
        except HistoryError as error:
            print(f"diffperf {args.command}: {error}", file=sys.stderr)
            return 2
        except OSError as error:
            where = f"{error.filename}: " if getattr(error, "filename", None) else ""
            print(f"diffperf {args.command}: {where}{error.strerror or error}", file=sys.stderr)
            return 2
    return run


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (or 0% and 100%), got {text!r}")
    return value


def _cmd_compare(args) -> int:
    from diffperf.compare import compare_many, comparison_tables
    from diffperf.history import load_runs
    from diffperf.table import render

    runs, warnings = load_runs(args.files)
    if len(runs) < 2:
        print(f"diffperf compare: need at least two runs, got {len(runs)} ({runs[0].source})", file=sys.stderr)
        return 2
    comparisons, more = compare_many(runs, confidence=args.confidence, threshold=args.threshold)
    for message in warnings + more:
        _warn(message)
    render([table for comparison in comparisons for table in comparison_tables(comparison)])
    regressions = [f"{c.new.label} vs {c.old.label}: {text}" for c in comparisons for text in c.regressions]
    untested = sum(c.untested for c in comparisons)
    if untested:
        _warn(f"{untested} change(s) untested for lack of raw rounds; those cannot fail the comparison")
    for line in regressions:
        print(f"REGRESSION {line}")
    if regressions and args.fail_on_regression:
        print(f"diffperf compare: {len(regressions)} regression(s)", file=sys.stderr)
        return 1
    return 0


def _cmd_trend(args) -> int:
    from diffperf.history import load_runs
    from diffperf.table import render
    from diffperf.trend import build_trends, trend_tables, write_trend

    outputs = args.out or []
    for out in outputs:
        if not out.lower().endswith((".png", ".html", ".htm")):
            print(f"diffperf trend: --out {out}: use a .png or .html file name", file=sys.stderr)
            return 2
    runs, warnings = load_runs(args.paths)
    trends = build_trends(runs, confidence=args.confidence)
    for message in warnings + trends.warnings:
        _warn(message)
    render(trend_tables(trends))
    for out in outputs:
        write_trend(trends, out)
        print(f"wrote {out}")
    return 0


def _cmd_report(args) -> int:
    from diffperf.report import write_report

    write_report(args.run, args.out, images_dir=args.images)
    print(f"wrote {args.out}")
    return 0


def _add_history_commands(commands) -> None:
    compare = commands.add_parser(
        "compare", help="compare saved runs: latency and speed-up changes with a significance verdict",
        description="Compare pytest-benchmark JSON runs (--benchmark-json / --benchmark-autosave files): "
                    "the first run of each profile and hardware is the base every later one is compared with.")
    compare.add_argument("files", nargs="+", metavar="RUN", help="pytest-benchmark JSON files or directories")
    compare.add_argument("--fail-on-regression", action="store_true",
                         help="exit 1 when a latency is significantly slower or a speed-up significantly lower")
    compare.add_argument("--threshold", type=_fraction, default=0.05,
                         help="smallest change that counts, relative (default 0.05 = 5%%)")
    compare.add_argument("--confidence", type=_fraction, default=0.95, help="interval confidence (default 0.95)")
    compare.set_defaults(handler=_history_command(_cmd_compare))

    trend = commands.add_parser(
        "trend", help="each variant's speed-up and latency over commits and dates",
        description="Plot speed-ups and latencies of saved runs over time, one panel per profile, hardware "
                    "and scenario.")
    trend.add_argument("paths", nargs="+", metavar="RUNS", help="pytest-benchmark JSON files or directories "
                       "(e.g. .benchmarks/)")
    trend.add_argument("--out", action="append", metavar="FILE",
                       help="write a .png chart or a self-contained .html page (repeatable)")
    trend.add_argument("--confidence", type=_fraction, default=0.95, help="interval confidence (default 0.95)")
    trend.set_defaults(handler=_history_command(_cmd_trend))

    report = commands.add_parser(
        "report", help="one self-contained HTML page for a run",
        description="Speed-up table with verdicts, latency and memory charts, per-stage breakdown and "
                    "baseline/current/difference images, in one HTML file.")
    report.add_argument("run", metavar="RUN.json", help="a pytest-benchmark JSON file")
    report.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    report.add_argument("--images", default=None, metavar="DIR",
                        help="directory of <variant>-<scenario>-{expected,actual,diff}.png images")
    report.set_defaults(handler=_history_command(_cmd_report))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffperf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    variants = commands.add_parser("variants", help="list the pipeline variants and whether they run here")
    variants.add_argument("--profile", choices=PROFILE_NAMES, default="full")
    variants.add_argument("--device", default=None, help="torch device to judge for (default: cuda if available)")
    variants.add_argument("--json", action="store_true", help="machine-readable output")
    variants.set_defaults(handler=_cmd_variants)
    _add_history_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
