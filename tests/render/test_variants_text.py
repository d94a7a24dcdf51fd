"""``diffperf variants`` in words (diffperf.render.variants_text)."""

from diffperf.render.variants_text import variants_lines


def row(variant, family="sd1", **fields):
    return {"variant": variant, "family": family, "changes": f"{variant} changes", "reference": "baseline",
            "dtype": "float32", "parameters": {"unet": 1_234_567, "vae": 89}, "runs_here": True, "why_not": None,
            "opt_in": None, "opt_in_why": None, "best_stack": False, **fields}


def test_one_block_per_family_three_lines_per_variant():
    rows = [row("baseline", reference=None), row("tf32", runs_here=False, why_not="tf32 needs a CUDA GPU"),
            row("compile", opt_in="--perf-compile", opt_in_why="slow to build", best_stack=True),
            row("sdxl-base", family="sdxl", reference=None, dtype="float16", parameters={"unet": 5})]
    assert variants_lines(rows, "tiny") == [
        "profile tiny: 4 variants of 2 families (sd1, sdxl)",
        "",
        "sd1:",
        "- baseline [float32]: baseline changes",
        "    parameters: unet 1,234,567, vae 89",
        "    runs here",
        "- tf32 vs baseline [float32]: tf32 changes",
        "    parameters: unet 1,234,567, vae 89",
        "    skipped: tf32 needs a CUDA GPU",
        "- compile vs baseline [float32]: compile changes (best stack: its speed-up over fp32 is shown first)",
        "    parameters: unet 1,234,567, vae 89",
        "    runs here (opt-in: --perf-compile, slow to build)",
        "",
        "sdxl:",
        "- sdxl-base [float16]: sdxl-base changes",
        "    parameters: unet 5",
        "    runs here",
    ]


def test_an_opt_in_is_shown_only_for_a_variant_that_runs():
    lines = variants_lines([row("fp16", runs_here=False, why_not="no", opt_in="--perf-speedups")], "full")
    assert lines[-1] == "    skipped: no" and lines[0] == "profile full: 1 variants of 1 families (sd1)"
