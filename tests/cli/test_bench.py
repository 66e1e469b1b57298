"""`dmoe bench`: benchmarks are found by file name and run with the same Python, args passed."""

from __future__ import annotations

import sys

import pytest

from neurons import bench


@pytest.fixture
def scripts(tmp_path, monkeypatch):
    (tmp_path / "bench_echo.py").write_text(
        '"""Echo the interpreter and arguments. Second sentence."""\n'
        "import sys\nprint(sys.executable, *sys.argv[1:])\nsys.exit(3)\n"
    )
    (tmp_path / "bench_bare.py").write_text("pass\n")
    (tmp_path / "helper.py").write_text('"""Not a benchmark."""\n')
    monkeypatch.setattr(bench, "SCRIPTS_DIR", tmp_path)
    return tmp_path


def test_lists_benchmarks_with_their_purpose(scripts, capsys):
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "echo  Echo the interpreter and arguments" in out and "Second" not in out
    assert "bare" in out and "helper" not in out


def test_runs_one_with_the_same_python_and_its_arguments(scripts, capfd):
    assert bench.main(["echo", "--quick", "x"]) == 3  # the script's own exit status
    assert capfd.readouterr().out.strip() == f"{sys.executable} --quick x"
    assert bench.main(["bench_echo.py"]) == 3  # the file name works too


def test_unknown_benchmark_suggests_the_closest(scripts, capsys):
    assert bench.main(["ecoh"]) == 2
    assert "did you mean 'echo'" in capsys.readouterr().err


def test_missing_scripts_dir_names_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "SCRIPTS_DIR", tmp_path / "absent")
    assert bench.main(["echo"]) == 2
    assert "pip install -e" in capsys.readouterr().err


def test_the_repository_benchmarks_are_listed():
    found = bench.discover()
    assert {"chain", "miner", "validator"} <= set(found)
    assert all(bench.purpose(p) for p in found.values())
