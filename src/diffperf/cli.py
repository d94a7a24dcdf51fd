"""The ``diffperf`` command line: ``diffperf variants`` (and the history commands)."""

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffperf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    variants = commands.add_parser("variants", help="list the pipeline variants and whether they run here")
    variants.add_argument("--profile", choices=PROFILE_NAMES, default="full")
    variants.add_argument("--device", default=None, help="torch device to judge for (default: cuda if available)")
    variants.add_argument("--json", action="store_true", help="machine-readable output")
    variants.set_defaults(handler=_cmd_variants)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
