"""Many hosts' runs side by side (diffperf.history.hosts, ``diffperf gather``): each judged against its own host."""

from __future__ import annotations

import historydata as hd
import pytest

from diffperf.cli import main
from diffperf.history.hosts import host_matrix
from diffperf.history.runs import HistoryError, run_from_dict
from diffperf.render.history_text import host_matrix_tables


def gate_row(variant, value, status, best_stack=False, reference="baseline"):
    return {"kind": "speed-up", "variant": variant, "reference": reference, "scenario": "astronaut", "value": value,
            "status": status, "family": "sd1", "best_stack": best_stack}


def host_run(host, rows, failed=False, device="NVIDIA H100 80GB HBM3"):
    document = hd.run([hd.benchmark("baseline", "astronaut", hd.rounds(0.18))], profile="full", device_type="cuda",
                      device_name=device, gate={"baseline_key": host, "baseline_source": "host", "failed": failed,
                                                "judged": len(rows), "speedups": rows})
    document["machine_info"]["diffperf"]["host_key"] = host
    return document


def test_each_speedup_per_host_with_its_own_verdict_best_stacks_first():
    h100 = run_from_dict(host_run("cuda-h100-x1-aaaa", [gate_row("fp16", 1.52, "ok"),
                                                         gate_row("best-gpu", 3.1, "ok", best_stack=True)]), "h100.json")
    a100 = run_from_dict(host_run("cuda-a100-x1-bbbb", [gate_row("fp16", 1.21, "regressed")], failed=True,
                                  device="NVIDIA A100-SXM4-80GB"), "a100.json")
    matrix = host_matrix([h100, a100])
    assert [host.host for host in matrix.failed] == ["cuda-a100-x1-bbbb"]
    (table,) = host_matrix_tables(matrix)
    assert [column.header for column in table.columns] == ["speed-up", "cuda-h100-x1-aaaa", "cuda-a100-x1-bbbb"]
    assert [row[0] for row in table.rows] == ["best-gpu vs baseline/astronaut", "fp16 vs baseline/astronaut"]
    assert table.rows[1][1][0] == "1.52x ok" and table.rows[1][2][0] == "1.21x regressed"
    assert table.rows[0][2] == "-"  # not measured on that host
    assert "cuda-a100-x1-bbbb: FAILED, judged against cuda-a100-x1-bbbb (a100.json)" in table.notes


def test_one_run_per_host_with_its_gate(tmp_path, capsys):
    one = host_run("cuda-h100-x1-aaaa", [gate_row("fp16", 1.5, "ok")])
    with pytest.raises(HistoryError, match="both come from cuda-h100-x1-aaaa: gather one run per host"):
        host_matrix([run_from_dict(one, "a.json"), run_from_dict(host_run("cuda-h100-x1-aaaa", []), "b.json")])
    plain = hd.run([hd.benchmark("baseline", "astronaut", hd.rounds(0.18))])
    with pytest.raises(HistoryError, match="holds no gate results"):
        host_matrix([run_from_dict(plain, "plain.json")])


def test_the_command_writes_the_summary_and_fails_when_a_host_failed(tmp_path, capsys):
    ok = hd.write(tmp_path / "h100.json", host_run("cuda-h100-x1-aaaa", [gate_row("fp16", 1.5, "ok")]))
    bad = hd.write(tmp_path / "a100.json", host_run("cuda-a100-x1-bbbb", [gate_row("fp16", 1.2, "regressed")],
                                                    failed=True))
    summary = tmp_path / "summary.md"
    assert main(["gather", str(ok), str(bad), "--summary", str(summary)]) == 0
    assert main(["gather", str(ok), str(bad), "--fail-on-regression"]) == 1
    text = summary.read_text()
    assert text.startswith("## diffperf: speed-ups by host") and "| fp16 vs baseline/astronaut | 1.50x ok |" in text
    assert "the gate failed on cuda-a100-x1-bbbb" in capsys.readouterr().err


def test_the_command_refuses_a_summary_it_cannot_write_before_reading_the_runs(tmp_path, capsys):
    run = hd.write(tmp_path / "h100.json", host_run("cuda-h100-x1-aaaa", [gate_row("fp16", 1.5, "ok")]))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory would be")
    summary = blocker / "summary.md"
    assert main(["gather", str(run), "--summary", str(summary)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1  # no table: refused before the work
    assert captured.err.startswith(f"diffperf gather: --summary {summary}: ") and ".tmp" not in captured.err
