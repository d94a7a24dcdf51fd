"""The HTML report (diffperf.render.report): content, self-containment, and a real headless browser."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import historydata as hd
import numpy as np
import pytest
from PIL import Image

from diffperf.cli import main
from diffperf.stats import ratios as gate_ratios
from diffperf.gate.verdicts import GateRow
from diffperf.render.report import build_report, image_path, write_report
from diffperf.history.runs import load_run, run_from_dict

MAGENTA = (255, 0, 255)
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report.png"


class Page(HTMLParser):
    """The parts of a page the tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[str] = []  # ids
        self.images: list[dict] = []
        self.tags: set[str] = set()
        self.links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self.tables.append(attrs.get("id", ""))
        elif tag == "img":
            self.images.append(attrs)
        for name in ("href", "src"):
            if name in attrs and tag != "img":
                self.links.append(attrs[name])


def gate_section(run_document: dict, legacy: bool = False) -> dict:
    """A gate section like the speed-up gate writes, with each kind of verdict.

    Numbers only, as :class:`diffperf.gate.verdicts.GateRow` holds them; ``legacy``: as files
    written before that, with ``median``/``message`` and no band bounds.
    """
    statuses = ["ok", "regressed", "inconclusive", "improved"]
    speedups, memory = [], []
    for index, bench in enumerate(b for b in run_document["benchmarks"] if b["extra_info"].get("reference")):
        info = bench["extra_info"]
        names = {"variant": info["variant"], "reference": info["reference"], "scenario": info["scenario"]}
        ratios = gate_ratios.pair_ratios(info["reference_rounds"], bench["stats"]["data"])
        status = statuses[index % len(statuses)]
        speedups.append((_legacy_speedup_row if legacy else _speedup_row)(names, ratios, status))
        memory_ratio = info["peak_memory"] / info["reference_peak_memory"]
        memory.append({**names, "kind": "memory", "status": "ok", "value": memory_ratio, "expected": 0.9,
                       "tolerance": 0.5, "message": "peak-memory ratio within tolerance"} if legacy else
                      asdict(GateRow("memory", **names, status="ok", value=memory_ratio, expected=0.9,
                                     tolerance=0.5, lower=0.45, upper=1.35)))
    if legacy:
        return {"baseline_key": "cpu-amd-epyc-tiny", "note": "gating against expected speed-ups of this machine",
                "failed": True, "problems": [], "speedups": speedups, "memory": memory}
    return {"baseline_key": "cpu-amd-epyc-tiny", "baseline_source": "host", "closest_host": None, "differences": [],
            "failed": True, "judged": len(speedups), "not_run": {}, "speedups": speedups, "memory": memory}


def _expected(median: float, status: str) -> float:
    return {"ok": median, "regressed": median * 1.3, "inconclusive": median * 1.05, "improved": median / 1.3}[status]


def _speedup_row(names: dict, ratios: np.ndarray, status: str) -> dict:
    median = float(np.median(ratios))
    expected = _expected(median, status)
    return asdict(GateRow(
        "speed-up", **names, status=status, value=median, low=float(ratios.min()), high=float(ratios.max()),
        judged_low=float(ratios.min()) * 0.97, judged_high=float(ratios.max()) * 1.03, confidence=0.95,
        n=len(ratios), expected=expected, tolerance=0.05, lower=expected * 0.95, upper=expected * 1.05,
        rounds_needed=2 * len(ratios) if status == "inconclusive" else None))


def _legacy_speedup_row(names: dict, ratios: np.ndarray, status: str) -> dict:
    median = float(np.median(ratios))
    return {**names, "kind": "speed-up", "status": status, "median": median, "low": float(ratios.min()),
            "high": float(ratios.max()), "n": len(ratios), "expected": _expected(median, status), "tolerance": 0.05,
            "rounds_needed": None, "message": f"speed-up {median:.2f}x: {status}"}


def our_run_with_gate(legacy: bool = False) -> dict:
    document = json.loads(hd.REAL_RUN.read_text())
    document["diffperf"] = gate_section(document, legacy)
    return document


def write_images(directory: Path, variant: str, scenario: str, colour=(40, 90, 160), shift: int = 0) -> None:
    """Smooth expected/actual pictures and their amplified difference, in the report's naming convention."""
    y, x = np.mgrid[0:128, 0:128] / 127.0
    base = np.stack([colour[0] * (1 - y) + 230 * y, colour[1] * (1 - x) + 200 * x, colour[2] + 60 * x * y], -1)

    def picture(dx: float) -> np.ndarray:
        pixels = base.copy()
        pixels[(x - 0.55 - dx) ** 2 + (y - 0.45) ** 2 < 0.08] = [235, 200, 90]
        return pixels

    expected, actual = picture(0.0), picture(0.01 * (1 + shift % 3))
    diff = np.clip(np.abs(actual - expected) * 4, 0, 255)
    directory.mkdir(parents=True, exist_ok=True)
    for kind, pixels in (("expected", expected), ("actual", actual), ("diff", diff)):
        Image.fromarray(pixels.astype(np.uint8)).save(image_path(directory, variant, scenario, kind))


def test_report_tables_charts_and_self_contained(tmp_path):
    out = write_report(our_run_with_gate(), tmp_path / "sub" / "report.html")
    text = out.read_text()
    page = Page(text)
    assert page.tables[1:] == ["speedups-table", "latency-table", "stages-table", "memory-table"]
    charts = [img for img in page.images if img.get("class") == "chart"]
    assert len(charts) == 4  # speed-up, latency, stages, memory
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    assert page.links == [] and not {"script", "link", "iframe"} & page.tags
    assert "http://" not in text and "https://" not in text
    for status in ("ok", "regressed", "inconclusive", "improved"):
        assert f'class="status status-{status}"' in text
    assert "cpu-amd-epyc-tiny" in text and "±5%" in text
    assert text.count("not recorded") >= 6 * 3  # no images directory: every image "not recorded"
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # readable like any user file


def test_images_embedded_or_not_recorded(tmp_path):
    images = tmp_path / "images"
    write_images(images, "distilled", "astronaut")
    out = write_report(hd.REAL_RUN, tmp_path / "report.html", images_dir=images)
    text = out.read_text()
    page = Page(text)
    shown = [img for img in page.images if img.get("class") != "chart"]
    assert [img["alt"] for img in shown] == ["distilled/astronaut baseline", "distilled/astronaut current",
                                             "distilled/astronaut difference"]
    expected_bytes = image_path(images, "distilled", "astronaut", "expected").read_bytes()
    assert base64.b64encode(expected_bytes).decode() in text
    assert text.count(">not recorded<") == 5 * 3  # the other five cases
    assert "no gate results in this file" in text and "not gated" in text


def test_report_without_raw_rounds_and_of_a_plain_file(tmp_path):
    text = build_report(run_from_dict(hd.standard_run(with_data=False), "autosaved.json"))
    assert "no raw rounds for baseline/astronaut" in text and "IQR" in text
    plain = hd.run([hd.benchmark("test_sum", "", hd.rounds(0.01), plain=True)], profile=None)
    text = build_report(run_from_dict(plain, "plain.json"))
    page = Page(text)
    assert "latency-table" in page.tables and "speedups-table" not in page.tables
    assert "no speed-ups" in text and "test_sum" in text


def test_cli_report(tmp_path, capsys):
    run = hd.write(tmp_path / "run.json", our_run_with_gate())
    out = tmp_path / "report.html"
    (tmp_path / "images").mkdir()
    assert main(["report", str(run), "--out", str(out), "--images", str(tmp_path / "images")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert ">not recorded<" in out.read_text()


@pytest.mark.parametrize("images", ["nowhere", "run.json"])
def test_cli_report_refuses_images_that_are_not_a_directory(tmp_path, capsys, images):
    run = hd.write(tmp_path / "run.json", our_run_with_gate())
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out), "--images", str(tmp_path / images)]) == 2
    assert capsys.readouterr().err == (f"diffperf report: --images {tmp_path / images} is not a directory: give the "
                                       "directory of the run's images (images/ in its --perf-output) or leave the "
                                       "option out\n")
    assert not out.exists()


def _cells(text: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of one table (tags stripped)."""
    body = text.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in rows]


def _speedup_cells(text: str) -> list[list[str]]:
    """The speed-up table's rows without their first column, the family (each row has one, or "-")."""
    rows = _cells(text, "speedups-table")
    assert all(row[0] for row in rows)
    return [row[1:] for row in rows]


def test_gate_rows_in_words_from_their_numbers():
    document = our_run_with_gate()
    text = build_report(run_from_dict(document, "run.json"))
    rows = {(row[0], row[2]): row for row in _speedup_cells(text)}
    gate = {(row["variant"], row["scenario"]): row for row in document["diffperf"]["speedups"]}
    for key, row in rows.items():
        numbers = gate[key]
        assert row[3] == f"{numbers['value']:.3f}x"
        assert row[4] == f"[{numbers['low']:.3f}, {numbers['high']:.3f}]"
        assert row[5] == f"[{numbers['judged_low']:.3f}, {numbers['judged_high']:.3f}]"
        assert row[6] == f"{numbers['expected']:.3f}x" and row[7] == "±5%" and row[8] == numbers["status"]
    attention = text[text.index('id="attention"'):text.index('id="speedups"')]
    assert "below expected" in attention and "above expected" in attention  # the regressed and improved rows
    assert "paired rounds would decide (--perf-rounds" in attention  # an inconclusive row that rounds in reach decide
    assert f"failed: {len(gate)} ratio(s) judged against this host&#39;s calibration cpu-amd-epyc-tiny" in text
    memory = [row for row in _cells(text, "memory-table") if row[4] != "-"]  # the cases with a reference
    assert len(memory) == len(gate) and all(row[-1] == "ok" for row in memory)
    assert text.count('title="peak-memory ratio') == len(gate)  # each verdict's meaning on hover


def test_files_written_before_the_gate_kept_numbers_only_still_render():
    text = build_report(run_from_dict(our_run_with_gate(legacy=True), "old.json"))
    rows = _speedup_cells(text)
    assert len(rows) == 4 and text.count('title="speed-up ') == 4  # each saved message, on its verdict
    assert "judged (across processes)" not in text
    assert "gating against expected speed-ups of this machine (baseline key cpu-amd-epyc-tiny)" in text
    memory = [row for row in _cells(text, "memory-table") if row[4] != "-"]
    assert len(memory) == 4 and text.count('title="peak-memory ratio within tolerance"') == 4


def test_interval_columns_follow_the_confidence_the_report_was_built_with():
    """Defect: the CI heading (and the estimates behind it) said 95% whatever the confidence."""
    run = load_run(hd.REAL_RUN)
    text = build_report(run, confidence=0.9)
    assert "<th>90% CI</th>" in text and "95% CI" not in text
    distilled = run.by_key[("distilled", "astronaut")]
    estimate = gate_ratios.paired_ratio(distilled.reference_rounds, distilled.data, 0.9)
    row = next(row for row in _speedup_cells(text) if row[:3] == ["distilled", "baseline", "astronaut"])
    assert row[4] == f"[{estimate.low:.3f}, {estimate.high:.3f}]"
    assert {row[4] for row in _cells(text, "latency-table")} == {"90% CI"}


def test_out_directory_gets_report_html(tmp_path, capsys):
    """Defect: --out DIR wrote a temporary file named after nothing the user gave."""
    run = hd.write(tmp_path / "run.json", our_run_with_gate())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert main(["report", str(run), "--out", str(out_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out_dir / 'report.html'}"
    assert sorted(path.name for path in out_dir.iterdir()) == ["report.html"]
    assert write_report(run, f"{tmp_path / 'new'}/") == tmp_path / "new" / "report.html"
    assert (tmp_path / "new" / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_history_section_shows_the_change_points(tmp_path, capsys):
    scales = np.exp(np.random.default_rng(5).normal(0, 0.01, 20))
    (tmp_path / "history").mkdir()
    for i, scale in enumerate(scales):
        hd.write(tmp_path / "history" / f"day{i}.json",
                 hd.standard_run(slowdown=1.25 if i >= 12 else 1.0, seed=i, scale=float(scale),
                                 commit=f"{i:07x}abcdef0", when=f"2026-10-{1 + i:02d}T10:00:00+00:00"))
    latest = tmp_path / "history" / "day19.json"
    out = tmp_path / "report.html"
    assert main(["report", str(latest), "--out", str(out), "--history", str(tmp_path / "history")]) == 0
    text = out.read_text()
    assert "20 runs of profile tiny" in text
    rows = _cells(text, "history-table")
    assert [(row[0], row[1], row[2]) for row in rows] == [("distilled/astronaut", "latency", "day12.json"),
                                                          ("distilled/astronaut", "speed-up", "day12.json")]
    changes = [float(row[7].rstrip("%")) for row in rows]
    assert changes == pytest.approx([25, -20], abs=2)

    gpu = hd.write(tmp_path / "gpu.json", hd.standard_run(profile="full", device_name="NVIDIA H100",
                                                           device_type="cuda"))
    text = build_report(load_run(latest), history=[load_run(gpu)])
    assert 'id="history"' in text and "No other saved run of profile tiny" in text
    assert 'id="history"' not in build_report(load_run(latest))


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


def _chromium_run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    images = tmp_path / "images"
    scenarios = ("astronaut", "vase")
    for i, variant in enumerate(("baseline", "distilled", "distilled-taesd")):
        for j, scenario in enumerate(scenarios):
            write_images(images, variant, scenario, colour=(40 + 60 * i, 90 + 50 * j, 160), shift=i * 2 + j)
    # One unmistakable picture: a magenta "current" image, to find in the screenshot.
    Image.new("RGB", (128, 128), MAGENTA).save(image_path(images, "distilled-taesd", "vase", "actual"))
    report = write_report(our_run_with_gate(), tmp_path / "report.html", images_dir=images)

    dom = _chromium_run(browser, tmp_path / "profile-dom", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = Page(dom.stdout)
    assert page.tables[1:] == ["speedups-table", "latency-table", "stages-table", "memory-table"]
    assert len([img for img in page.images if img.get("class") == "chart"]) == 4
    assert len([img for img in page.images if img.get("class") != "chart"]) == 6 * 3
    assert "distilled-taesd" in dom.stdout and "regressed" in dom.stdout

    shot = tmp_path / "report.png"
    result = _chromium_run(browser, tmp_path / "profile-shot", "--window-size=1280,7000",
                           f"--screenshot={shot}", report.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[1] == 1280
    magenta = np.all(pixels == MAGENTA, axis=-1)
    assert magenta.sum() > 100 * 100  # the magenta image was decoded and painted (shown 256x256)
    packed = pixels[::4, ::4].astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.int32)
    assert len(np.unique(packed)) > 1000  # charts and pictures, not a blank page
    if os.environ.get("DIFFPERF_UPDATE_DOCS"):
        _save_docs_screenshot(browser, tmp_path, images)


def _save_docs_screenshot(browser: str, tmp_path: Path, images: Path) -> None:
    """DIFFPERF_UPDATE_DOCS=1: regenerate docs/report.png (no magenta image, cropped, downscaled)."""
    write_images(images, "distilled-taesd", "vase", colour=(160, 90, 40), shift=9)
    report = write_report(our_run_with_gate(), tmp_path / "docs-report.html", images_dir=images)
    shot = tmp_path / "docs-report.png"
    result = _chromium_run(browser, tmp_path / "profile-docs", "--window-size=1280,3600",
                           f"--screenshot={shot}", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    picture = Image.open(shot).convert("RGB")
    picture = picture.resize((picture.width * 3 // 4, picture.height * 3 // 4), Image.LANCZOS)
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    picture.save(DOCS_SCREENSHOT, optimize=True)


def test_templates_are_package_data():
    """A non-editable install has the templates: pyproject's package-data covers every file of templates/."""
    tomllib = pytest.importorskip("tomllib")
    from fnmatch import fnmatch

    from diffperf.render.pages import TEMPLATES

    config = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["diffperf.render"]
    names = sorted(path.name for path in TEMPLATES.iterdir() if path.is_file())
    assert {"base.html", "report.html", "trend.html", "diffperf.css"} <= set(names)
    assert all(any(fnmatch(f"templates/{name}", pattern) for pattern in patterns) for name in names)


def test_throughput_table_says_what_the_terminal_summary_says():
    from diffperf.render.throughput_text import as_table

    document = hd.with_throughput(hd.standard_run(), {"baseline": 10.0, "distilled": 6.0, "distilled-taesd": 5.0})
    text = build_report(run_from_dict(document, "run.json"))
    assert Page(text).tables[1:] == ["speedups-table", "latency-table", "stages-table", "memory-table",
                                     "throughput-table"]
    expected = as_table([bench["extra_info"] for bench in document["benchmarks"]]).rows
    assert _cells(text, "throughput-table") == expected and len(expected) == 3
    assert "No FLOP counts in this file" in build_report(load_run(hd.REAL_RUN))


def test_the_speedup_table_lists_the_best_stacks_first_as_the_terminal_does():
    document = our_run_with_gate()
    rows = document["diffperf"]["speedups"]
    rows[-1]["best_stack"] = True  # the fastest stack is declared last, after bf16 and the others
    text = build_report(run_from_dict(document))
    assert [row[0] for row in _speedup_cells(text)] == [rows[-1]["variant"]] + [row["variant"] for row in rows[:-1]]


def test_cli_report_refuses_an_out_it_cannot_write_before_reading_the_run(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory would be")
    out = blocker / "report.html"
    assert main(["report", str(hd.REAL_RUN), "--out", str(out), "--history", str(hd.REAL_RUN)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"diffperf report: --out {out}: ") and ".tmp" not in captured.err


def test_cli_report_refuses_a_run_without_benchmarks(tmp_path, capsys):
    document = json.loads(hd.REAL_RUN.read_text())
    document["benchmarks"] = []
    run = hd.write(tmp_path / "empty.json", document)
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"diffperf report: {run}: no benchmarks in this run, nothing to report: give "
                                       "a run that finished at least one case\n")
    assert not out.exists()


def test_an_interrupted_run_claims_no_verdict_and_names_what_it_left_out():
    document = our_run_with_gate()
    document["diffperf"].update(interrupted=True, failed=False, judged=0, unfinished=["test_latency[bf16-vase]"])
    text = build_report(run_from_dict(document))
    assert "<td>nothing judged: the run was interrupted</td>" in text
    assert ("this run was interrupted: its speed-ups were not judged and the cases it did not reach are missing; "
            "left out, half measured: test_latency[bf16-vase]") in text


def test_the_report_leads_with_what_needs_attention_and_keeps_noise_to_one_line():
    document = our_run_with_gate()
    rows = document["diffperf"]["speedups"]
    quiet = next(row for row in rows if row["status"] == "inconclusive")
    quiet["rounds_needed"] = None  # no rounds in reach decide it: the host's noise
    text = build_report(run_from_dict(document, "run.json"))
    attention = text[text.index('id="attention"'):text.index('id="speedups"')]
    assert "regressed" in attention and quiet["variant"] + "/" + quiet["scenario"] not in attention.split(
        "within this host")[0]
    assert "1 speed-up inconclusive within this host&#39;s noise" in attention
    speedups = text[text.index('id="speedups"'):]
    assert speedups.index("<img") < speedups.index('id="speedups-table"')  # the chart of each ratio and its band first


WIDTH_PROBE = """<script>window.addEventListener("load", () => document.body.setAttribute(
  "data-scroll-width", String(document.documentElement.scrollWidth)));</script></body>"""


def test_the_report_does_not_scroll_sideways_in_a_1400_px_window(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    # a real run (host E, the distilled UNet planted 30% slower): a failed gate, every table, the longest names
    report = write_report(Path(__file__).parents[1] / "data" / "run-tiny-cpu-gated.json", tmp_path / "report.html")
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", WIDTH_PROBE))
    dom = _chromium_run(browser, tmp_path / "profile-width", "--window-size=1400,1800", "--virtual-time-budget=3000",
                        "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    width = int(re.search(r'data-scroll-width="(\d+)"', dom.stdout).group(1))
    assert width <= 1400
