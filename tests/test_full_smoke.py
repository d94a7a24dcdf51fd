"""The full-size architectures end to end on the CPU, through the code path GPU runs use.

The ``full`` profile (SD v1 UNet, the BK-SDM-small student derived from it, CLIP ViT-L/14, the KL
VAE, TAESD; SDXL, its students and TAESDXL) is what GPU CI runs. Here the real suite files run on
SD v1 with the smallest workload every block still sees (1 step at 64x64 pixels: an 8x8 latent, 3
downsamplings to 1x1): the store, the timed pipeline, stage times, the peak-memory and FLOP probes,
image capture and recording, and the gate's bookkeeping all run; SDXL's full-size components run
forward one by one (its pipeline needs about 14 GB in fp32), and so do SD3.5 Medium's transformer and VAE. ``pytest tests -m "not full_smoke"``
leaves these tests out.

It runs on one intra-op thread, like every unit test (tests/conftest.py): on a shared machine two
OpenMP threads wait on each other whenever one is descheduled, and the full-size calls then take
4 to 5 times longer than on one thread (measured here under a load of 3 on 2 cores).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import diffperf.cases.similarity  # noqa: F401  (pytester's in-process runs cannot import torch a second time)
import diffperf.cases.latency  # noqa: F401
from diffperf.models import sd1, sd3, sdxl
from diffperf.models.bksdm import derive_student, teacher_key
from diffperf.models.builtin import builtin_registry
from diffperf.models.sdxl_students import STUDENTS, derive_sdxl_student
from diffperf.models.zoo import SyntheticSource
from diffperf.options import PerfOptions

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "perf"
VARIANTS = ("baseline", "distilled", "distilled-taesd")
WORKLOAD = ["--perf-steps", "1", "--perf-resolution", "64"]
KEPT = re.compile(r"(conv_in|time_embedding|conv_norm_out|conv_out|"
                  r"(down|up)_blocks\.\d+\.(resnets|attentions|downsamplers|upsamplers)\.\d+)")


@pytest.mark.full_smoke
def test_full_size_pipelines_run_through_the_suite(pytester, tmp_path):
    # Names no module of the outer session has (tests/images/test_similarity.py is imported as test_similarity).
    pytester.makepyfile(test_full_latency=(SUITE / "test_latency.py").read_text(),
                        test_full_similarity=(SUITE / "test_similarity.py").read_text())
    baselines, output, report, summary = (tmp_path / name for name in ("baselines", "output", "report", "summary.md"))
    args = ["-k", "astronaut and not xl and not flux and not sd35", "--perf-profile", "full", "--perf-device", "cpu", "--perf-variants", ",".join(VARIANTS),
            *WORKLOAD, "--perf-baselines", str(baselines), "--perf-output", str(output), "-p", "no:cacheprovider"]

    # Latency (6 paired rounds, no warm-up) and the images' health, in one process as a user's run. With
    # --perf-steps/--perf-resolution the images are checked for health only (no baseline holds this workload).
    recorded = pytester.runpytest(*args, "--perf-rounds", "6", "--perf-warmup", "0", "-rs",
                                  "--perf-report", str(report), "--perf-summary", str(summary))
    cases = builtin_registry().cases()
    selected = 2 * sum(scenario == "astronaut" for _, scenario in cases)  # both files
    recorded.assert_outcomes(passed=len(VARIANTS), skipped=selected - len(VARIANTS),
                             deselected=2 * len(cases) - selected)
    healthy = re.findall(r"SKIPPED \[(\d+)\] [^\n]*image checked for health only", recorded.stdout.str())
    assert sum(map(int, healthy)) == len(VARIANTS), recorded.stdout.str()
    recorded.stdout.fnmatch_lines(["speed-up gate: nothing judged (workload overridden)",
                                   "*diffperf throughput*", "baseline*astronaut*GFLOP*"])
    run = json.loads((report / "run.json").read_text())
    cases = {bench["extra_info"]["variant"]: bench["extra_info"] for bench in run["benchmarks"]}
    assert sorted(cases) == sorted(VARIANTS)
    for info in cases.values():
        assert (info["profile"], info["steps"], info["resolution"]) == ("full", 1, 64)
        assert info["workload_overrides"] == {"steps": 1, "resolution": 64}
        assert all(np.isfinite(value) and value > 0 for value in info["stages"].values())
        assert info["flops"]["unet_calls"] == 1 and info["flops"]["total"] > 0
        assert all(rate > 0 for rate in info["throughput"]["achieved"].values())
        assert info["throughput"]["peak"]["measured"] > 0
    baseline, distilled, taesd = (cases[name]["flops"] for name in VARIANTS)
    assert baseline["text_encoding"] == distilled["text_encoding"] == taesd["text_encoding"]
    assert distilled["unet_per_call"] == taesd["unet_per_call"] < baseline["unet_per_call"]
    assert taesd["decoding"] < distilled["decoding"] == baseline["decoding"]
    assert run["diffperf"]["speedups"] and "throughput-table" in (report / "report.html").read_text()
    assert "## diffperf throughput" in summary.read_text()
    assert not baselines.exists()  # a run with an overridden workload records no image baseline


@pytest.mark.full_smoke
def test_the_students_kept_blocks_compute_what_the_teachers_compute():
    """BK-SDM keeps some of the teacher's blocks with their weights: at full size, given the inputs the
    teacher's blocks received, the student's blocks return the very same outputs."""
    teacher = SyntheticSource("full", torch.device("cpu")).build(sd1.FAMILY, "unet")
    student = derive_student(teacher, "small")
    kept = {name: teacher.get_submodule(teacher_key(name, "small"))
            for name, _ in student.named_modules() if KEPT.fullmatch(name)}
    assert len(kept) == 4 + (4 + 3 + 3) + (8 + 6 + 3)  # conv_in...conv_out; down, up: resnets, attentions, samplers
    seen = {}

    def record(name):
        def hook(module, args, kwargs, output):
            seen[name] = (args, kwargs, output)
        return hook

    handles = [module.register_forward_hook(record(name), with_kwargs=True) for name, module in kept.items()]
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    context = torch.randn(2, 77, sd1.UNET["cross_attention_dim"], generator=generator)
    with torch.no_grad():
        out = teacher(sample, 999, encoder_hidden_states=context, return_dict=False)[0]
        for handle in handles:
            handle.remove()
        assert out.shape == sample.shape and torch.isfinite(out).all()
        assert set(seen) == set(kept)  # every kept teacher block ran
        for name in kept:
            args, kwargs, expected = seen[name]
            actual = student.get_submodule(name)(*args, **kwargs)
            assert torch.equal(_tensor(actual), _tensor(expected)), name
        out = student(sample, 999, encoder_hidden_states=context, return_dict=False)[0]
    assert out.shape == sample.shape and torch.isfinite(out).all()


def _tensor(output) -> torch.Tensor:
    """A block's output tensor (Transformer2DModel returns a tuple when return_dict is False)."""
    return output[0] if isinstance(output, tuple) else getattr(output, "sample", output)


@pytest.mark.full_smoke
def test_full_size_sdxl_its_students_and_taesdxl_run_forward():
    """SDXL base 1.0's UNet (2.6B parameters), SSD-1B, Segmind-Vega and KOALA-700M derived from it, both text
    encoders, the VAE and TAESDXL, at full size on the CPU: the smallest input every block still sees (an 8x8
    latent), one at a time so that the 10 GB teacher and one student fit beside each other."""
    source = SyntheticSource("full", torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ids = torch.randint(0, 49407, (1, 77), generator=generator)
        states = []
        for name in ("text_encoder", "text_encoder_2"):
            encoder = source.build(sdxl.FAMILY, name)
            output = encoder(ids, output_hidden_states=True)
            states.append(output.hidden_states[-2])
            if name == "text_encoder_2":
                pooled = output.text_embeds
            del encoder
        context = torch.cat(states, dim=-1)
        assert context.shape == (1, 77, 2048) and pooled.shape == (1, 1280)
        conditioning = {"text_embeds": pooled, "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]])}
        sample = torch.randn(1, 4, 8, 8, generator=generator)
        teacher = source.build(sdxl.FAMILY, "unet")
        outputs = {"sdxl": teacher(sample, 999, encoder_hidden_states=context, added_cond_kwargs=conditioning).sample}
        for student in STUDENTS:
            unet = derive_sdxl_student(teacher, student)
            outputs[student] = unet(sample, 999, encoder_hidden_states=context, added_cond_kwargs=conditioning).sample
            del unet
        del teacher
        for name, output in outputs.items():
            assert output.shape == sample.shape and torch.isfinite(output).all(), name
        latents = torch.randn(1, 4, 8, 8, generator=generator)
        for name in ("vae", "taesdxl"):
            image = source.build(sdxl.FAMILY, name).decode(latents).sample
            assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all(), name


@pytest.mark.full_smoke
def test_full_size_sd35_medium_transformer_and_vae_run_forward():
    """SD3.5 Medium's transformer (2.24B parameters and a 226M-element position table, about 9.9 GB in fp32) and
    its 16-channel VAE at full size on the CPU, on the smallest latent its 2x2 patches take (16x16: 64 image
    tokens) and the pipeline's 333 text tokens (77 CLIP and 256 T5). Full-size FLUX.1 (48 GB in fp32) and the
    T5-XXL encoder (19 GB) are counted on meta tensors only (tests/models)."""
    source = SyntheticSource("full", torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        transformer = source.build(sd3.FAMILY, "transformer")
        sample = torch.randn(1, 16, 16, 16, generator=generator)
        context = torch.randn(1, 77 + 256, 4096, generator=generator)
        pooled = torch.randn(1, 2048, generator=generator)
        output = transformer(hidden_states=sample, encoder_hidden_states=context, pooled_projections=pooled,
                             timestep=torch.tensor([999.0])).sample
        del transformer
        assert output.shape == sample.shape and torch.isfinite(output).all()
        image = source.build(sd3.FAMILY, "vae").decode(output).sample
        assert image.shape == (1, 3, 128, 128) and torch.isfinite(image).all()


# --------------------------------------------------------------------------- the workload options


def test_workload_options_override_the_profiles_scaling():
    astronaut = sd1.FAMILY.scenario("astronaut")
    tiny = sd1.FAMILY.scale("tiny")
    assert astronaut.scaled(tiny) == astronaut.scaled(tiny, None, None)
    assert (astronaut.scaled(tiny).steps, astronaut.scaled(tiny).resolution) == (5, 128)
    full = astronaut.scaled(sd1.FAMILY.scale("full"), steps=1, resolution=64)
    assert (full.steps, full.resolution) == (1, 64)
    assert astronaut.scaled(None, resolution=768).steps == 50
    assert PerfOptions(steps=2, resolution=128).workload_overrides == {"steps": 2, "resolution": 128}
    assert PerfOptions().workload_overrides == {}


@pytest.mark.parametrize(("options", "message"), [
    ({"steps": 0}, "--perf-steps must be at least 1, got 0"),
    ({"resolution": 96}, "--perf-resolution must be a positive multiple of 64 pixels"),
    ({"resolution": 0}, "--perf-resolution must be a positive multiple of 64 pixels"),
])
def test_workload_options_that_cannot_work_are_one_line(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PerfOptions(**options).check()
