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
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


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
