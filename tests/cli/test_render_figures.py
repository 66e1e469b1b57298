"""`scripts/render_figures.py`: README's figures block is rebuilt from bench_results JSON, and a
malformed results file stops it with the file and the key named, leaving the README as it was."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "render_figures.py"
README = "intro\n<!-- figures:begin -->\nstale figures\n<!-- figures:end -->\nafter\n"
VALIDATOR = {
    "size": "test",
    "platform": "torch CPU, 1 thread",
    "verify_256": {"generate_s_p50": 0.5, "verify_s_p50": 0.0061, "ratio": 0.0122},
    "step_64": {"wall_s": 0.9, "outside_network_s": 0.21, "ok": 64},
}


@pytest.fixture(scope="module")
def rf():
    spec = importlib.util.spec_from_file_location("render_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_figures"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("render_figures", None)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "README.md").write_text(README)
    return tmp_path


def run(rf, tree, *extra: str) -> int:
    args = ["--results", str(tree / "results"), "--readme", str(tree / "README.md"), *extra]
    return rf.main(args)


def test_block_is_rebuilt_from_the_json_and_the_rest_is_kept(rf, tree, capsys):
    (tree / "results" / "bench_validator.json").write_text(json.dumps(VALIDATOR))
    (tree / "results" / "bench_unknown.json").write_text("{}")
    assert run(rf, tree, "--machine", "2 shared CPU cores") == 0
    text = (tree / "README.md").read_text()
    assert text.startswith("intro\n<!-- figures:begin -->") and text.endswith("end -->\nafter\n")
    assert "stale figures" not in text and "2 shared CPU cores" in text
    assert "**bench_validator**" in text and "`.venv/bin/python scripts/bench_validator.py`" in text
    assert "| verify / generate a 256-token answer (p50; target ≤ 10%) | 6.1 / 500 ms |" in text
    assert "wall / validator's own work | 900 / 210 ms |" in text
    assert "no renderer for bench_unknown.json" in capsys.readouterr().err
    assert run(rf, tree, "--machine", "2 shared CPU cores", "--check") == 0
    assert run(rf, tree, "--check") == 1  # another machine note: the block is stale


@pytest.mark.parametrize(
    "content,says",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"verify_256": {"generate_s_p50": 0.5}}), "missing 'verify_256.verify_s_p50'"),
        (
            json.dumps({**VALIDATOR, "step_64": {**VALIDATOR["step_64"], "wall_s": "x"}}),
            "not a number",
        ),
    ],
)
def test_a_malformed_file_is_named_and_the_readme_left_alone(rf, tree, capsys, content, says):
    (tree / "results" / "bench_validator.json").write_text(content)
    assert run(rf, tree) == 2
    err = capsys.readouterr().err
    assert "bench_validator.json" in err and says in err
    assert (tree / "README.md").read_text() == README


def test_a_readme_without_markers_names_them(rf, tree, capsys):
    (tree / "README.md").write_text("no markers\n")
    assert run(rf, tree) == 2
    assert "<!-- figures:begin -->" in capsys.readouterr().err
