"""The HTML report (diffperf.report): content, self-containment, and a real headless browser."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import historydata as hd
import numpy as np
import pytest
from PIL import Image

from diffperf.cli import main
from diffperf.history import run_from_dict
from diffperf.report import build_report, image_path, write_report

MAGENTA = (255, 0, 255)
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "report.png"


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


def gate_section(run_document: dict) -> dict:
    """A gate section like the speed-up gate writes, with each kind of verdict."""
    statuses = ["ok", "regressed", "inconclusive", "improved"]
    speedups, memory = [], []
    for index, bench in enumerate(b for b in run_document["benchmarks"] if b["extra_info"].get("reference")):
        info = bench["extra_info"]
        ratios = np.asarray(info["reference_rounds"]) / np.asarray(bench["stats"]["data"])
        median = float(np.median(ratios))
        status = statuses[index % len(statuses)]
        expected = {"ok": median, "regressed": median * 1.3, "inconclusive": median * 1.05,
                    "improved": median / 1.3}[status]
        speedups.append({
            "kind": "speed-up", "variant": info["variant"], "reference": info["reference"],
            "scenario": info["scenario"], "status": status, "message": f"speed-up {median:.2f}x: {status}",
            "value": median, "low": float(ratios.min()), "high": float(ratios.max()), "n": len(ratios),
            "expected": expected, "tolerance": 0.05, "rounds_needed": None, "half_width": 0.05,
        })
        memory.append({
            "kind": "memory", "variant": info["variant"], "reference": info["reference"],
            "scenario": info["scenario"], "status": "ok", "message": "peak-memory ratio within tolerance",
            "value": info["peak_memory"] / info["reference_peak_memory"], "expected": 0.9, "tolerance": 0.5,
        })
    return {"baseline_key": "cpu-amd-epyc-tiny", "note": "gating against expected speed-ups of this machine",
            "failed": True, "problems": [], "speedups": speedups, "memory": memory}


def our_run_with_gate() -> dict:
    document = json.loads(hd.REAL_RUN.read_text())
    document["diffperf"] = gate_section(document)
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
    assert main(["report", str(run), "--out", str(out), "--images", str(tmp_path / "nowhere")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert "images directory" in out.read_text() and "does not exist" in out.read_text()


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
