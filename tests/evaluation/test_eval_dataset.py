"""Prompts in AlpacaEval format, the selection a run uses, and what the command loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge_agent.errors import ConfigError
from edge_agent.evaluation.dataset import digest, load_prompts, select

ROWS = [{"instruction": f"Question {i}?", "dataset": "set", "output": f"Reference {i}.", "generator": "ref"}
        for i in range(10)]


def test_loads_alpacaeval_rows_keyed_by_position(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(ROWS + [{"instruction": "No output here"}]))
    prompts = load_prompts(path)
    assert [p.index for p in prompts] == list(range(11))
    assert prompts[3].instruction == "Question 3?" and prompts[3].dataset == "set"
    assert prompts[3].reference == "Reference 3." and prompts[10].reference is None


@pytest.mark.parametrize("body", ["{}", "[]", '[{"output": "x"}]', '[{"instruction": "  "}]', "not json"])
def test_anything_else_is_a_clear_error(tmp_path, body):
    path = tmp_path / "p.json"
    path.write_text(body)
    with pytest.raises(ConfigError):
        load_prompts(path)
    with pytest.raises(ConfigError, match="not found"):
        load_prompts(tmp_path / "absent.json")


def test_selection_first_or_seeded_sample(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(ROWS))
    prompts = load_prompts(path)
    assert [p.index for p in select(prompts, 3, seed=0)] == [0, 1, 2]
    assert len(select(prompts, None, seed=0)) == 10 and len(select(prompts, 99, seed=0)) == 10
    drawn = [p.index for p in select(prompts, 4, seed=5, sample="random")]
    assert drawn == sorted(drawn) and drawn == [p.index for p in select(prompts, 4, seed=5, sample="random")]
    assert drawn != [p.index for p in select(prompts, 4, seed=6, sample="random")]
    with pytest.raises(ConfigError):
        select(prompts, 0, seed=0)


def test_digest_follows_the_texts_not_the_file(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(ROWS))
    b.write_text(json.dumps(ROWS, indent=2))
    assert digest(load_prompts(a)) == digest(load_prompts(b))
    b.write_text(json.dumps(ROWS[:-1]))
    assert digest(load_prompts(a)) != digest(load_prompts(b))


def test_the_eval_command_loads_no_plotting_model_or_dataset_library():
    code = ("import sys, edge_agent.commands.eval\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('matplotlib', 'llama_cpp', 'textual', 'datasets'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_hf_without_the_datasets_library_says_what_to_install(monkeypatch):
    from edge_agent.evaluation.dataset import load_hf

    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(ConfigError, match="pip install datasets"):
        load_hf()
