"""The project's own house rules: environments agree with pyproject, notebooks are
committed clean, every notebook has a parameters cell, the CLI entry point exists."""

import json
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads pyproject.toml")

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pip_section(path: Path) -> list[str]:
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if re.match(r"\s*- pip:\s*$", line):
            inside = True
            continue
        if inside and re.match(r"\s+- ", line):
            lines.append(line.split("- ", 1)[1].strip())
    return lines


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("env", ["environment.yml", "binder/environment.yml"])
def test_environments_match_pyproject(project, env):
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]
              ["notebooks"]}
    reqs = [r for r in _pip_section(ROOT / env) if not r.startswith("-")]  # no pip options
    have = {_name(r) for r in reqs}
    assert wanted <= have, f"{env} lacks {sorted(wanted - have)}"
    assert "torch==2.13.0" in reqs, f"{env} must pin torch==2.13.0 (the CPU build on disk)"
    torch_range = next(r for r in project["dependencies"] if _name(r) == "torch")
    lo, hi = re.findall(r"[\d.]+", torch_range)[:2]
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(lo) <= (2, 13, 0) < as_tuple(hi)
    for r in reqs:  # the same lower bounds as pyproject
        for p in project["dependencies"]:
            if _name(p) == _name(r) and _name(r) != "torch":
                assert r.replace(" ", "") == p.replace(" ", ""), (env, r, p)


def test_makefile_pins_torch_and_binder_installs_package():
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post
    assert "python -m medseg_kit.teaching" in post, "postBuild must fill the teaching cache"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _recipe(makefile: str, target: str) -> tuple[list[str], str]:
    """The prerequisites and the recipe of ``target`` in a Makefile."""
    m = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n)*)", makefile, re.M)
    assert m, f"the Makefile has no target {target!r}"
    return m.group(1).split(), m.group(2)


def test_make_test_runs_pytest_beside_the_course():
    makefile = (ROOT / "Makefile").read_text()
    deps, recipe = _recipe(makefile, "test")
    assert "lint" in deps and "browser-deps" in deps, deps
    assert "-j2" in recipe and "unit" in recipe.split() and "course" in recipe.split(), recipe
    assert "pytest" in _recipe(makefile, "unit")[1]
    assert "tests/run_course.py" in _recipe(makefile, "course")[1]
    assert "bash .ci/browser-deps" in _recipe(makefile, "browser-deps")[1]
    assert (ROOT / "tests" / "run_course.py").is_file()


def test_the_test_extras_carry_what_the_test_tools_import(project):
    test = {_name(r) for r in project["optional-dependencies"]["test"]}
    assert {"pytest", "papermill", "psutil", "playwright", "nbval", "ruff"} <= test, test


def test_console_script_declared(project):
    assert project["scripts"]["medseg-kit"] == "medseg_kit.cli:main"


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean_and_parametrized(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") for c in code), f"{path.name}: strip the outputs"
    assert not any(c.get("execution_count") for c in code), f"{path.name}: strip counts"
    tags = [c.get("metadata", {}).get("tags", []) for c in code]
    assert any("parameters" in t for t in tags), f"{path.name}: no 'parameters' cell"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for c in code:
        src = "".join(c["source"]).splitlines()
        lines = [s for s in src if s.strip() and not s.strip().startswith("#")]
        assert len(lines) <= 16, f"{path.name}: a {len(lines)}-line cell belongs in medseg_kit"
