"""`edge-agent simulate` and `edge-agent plan` as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def edge_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_simulate_json_with_repeated_alpha() -> None:
    done = edge_agent("simulate", "--devices", "2", "--layers", "1", "--proposers", "1", "--rate", "0.08",
                      "--alpha", "1.0", "--alpha", "2.0", "--duration", "5000", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in ("lambda_star", "rho", "mean_latency", "p95_latency", "mean_queue", "final_queue", "stable"):
        assert key in result
    assert result["lambda_star"] == pytest.approx(1 / 6)
    assert result["rho"] == pytest.approx(0.48)
    assert result["stable"] is True
    assert len(result["device_queues"]) == 2


def test_comma_separated_alpha_is_the_same_run() -> None:
    common = ("simulate", "-n", "4", "-M", "1", "-k", "2", "--rate", "0.05", "--duration", "3000", "--json")
    repeated = edge_agent(*common, "--alpha", "1", "--alpha", "1", "--alpha", "2", "--alpha", "2")
    commas = edge_agent(*common, "--alpha", "1,1,2,2")
    assert repeated.returncode == commas.returncode == 0
    assert json.loads(repeated.stdout) == json.loads(commas.stdout)


def test_simulate_human_table() -> None:
    done = edge_agent("simulate", "-n", "4", "--alpha", "1", "--rate", "0.1", "--duration", "2000",
                      "--policy", "least-loaded")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "least-loaded" in done.stdout
    for label in ("λ*", "mean latency", "p95 latency", "mean queue", "final queue", "stable"):
        assert label in done.stdout


def test_replay_file_as_recorded(tmp_path: Path) -> None:
    recorded = tmp_path / "times.txt"
    recorded.write_text("# seconds per inference\n1.5\n2.5, 2.0\n")
    done = edge_agent("simulate", "-n", "3", "--replay", str(recorded), "--rate", "0.05",
                      "--duration", "2000", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lambda_star"] == pytest.approx(1 / (3 * 2.0))


def test_sweep_writes_csv_and_png(tmp_path: Path) -> None:
    done = edge_agent("simulate", "-n", "4", "--alpha", "1", "--sweep", "0.5,1.3", "--duration", "2000",
                      "--out", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("policy,ratio")
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in done.stdout


def test_plan_json_and_table() -> None:
    done = edge_agent("plan", "--alpha", "1,1,2,2", "--rate", "0.05", "--max-layers", "2", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert len(plan["configs"]) == 1 + 2 * 4
    best = plan["recommended"]
    assert best["stable"] and best["rho"] < 1
    assert best["inferences"] == max(c["inferences"] for c in plan["configs"] if c["stable"])
    table = edge_agent("plan", "--alpha", "1", "--alpha", "2", "--rate", "0.05")
    assert table.returncode == 0 and "recommended: M=" in table.stdout


@pytest.mark.parametrize("args", [
    ("simulate", "-n", "3", "--alpha", "1", "--alpha", "2", "--rate", "0.1"),
    ("simulate", "-n", "3", "-k", "3", "--alpha", "1", "--rate", "0.1"),
    ("simulate", "-n", "3", "--alpha", "1", "--rate", "0.1", "--sweep", "0.5"),
    ("simulate", "-n", "3", "--rate", "0.1"),
    ("plan", "--broker", "127.0.0.1:1", "--wait", "0.5", "--rate", "0.1"),
    ("plan", "--password-file", "/nonexistent/password", "--rate", "0.1"),
    ("plan", "--alpha", "slow", "--rate", "0.1"),
])  # fmt: skip
def test_bad_input_is_one_line(args: tuple[str, ...]) -> None:
    done = edge_agent(*args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Error: ") and len(done.stderr.strip().splitlines()) == 1


def test_plan_reads_alphas_from_the_mesh(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from edge_agent.cli import cli

    statuses = [
        {"device": "pi-a", "online": True, "alpha": 1.0},
        {"device": "pi-b", "online": True, "alpha": 2.0},
        {"device": "pi-c", "online": True, "alpha": None},
        {"device": "pi-d", "online": False, "alpha": 9.0},
    ]
    calls: list[tuple[str, int, float]] = []

    def read_statuses(host: str, port: int, wait_s: float, credentials: object) -> list[dict[str, object]]:
        calls.append((host, port, wait_s))
        return statuses

    fake = type(sys)("edge_agent.client.status")
    fake.read_statuses = read_statuses  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edge_agent.client.status", fake)
    done = CliRunner().invoke(cli, ["plan", "--broker", "10.0.0.5:1883", "--wait", "1", "--rate", "0.05", "--json"])
    assert done.exit_code == 0, done.output
    assert calls == [("10.0.0.5", 1883, 1.0)]
    assert json.loads(done.stdout)["alphas"] == [1.0, 2.0]
    assert "pi-c" in done.stderr
