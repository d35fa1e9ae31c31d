"""The layout guardrails of STYLE.md, each one seen failing in a trial, and the math-layer boundary."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import pairgrpo_rllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CORE = REPO / "pairgrpo_rllib" / "core"
FRAMEWORKS = ("ray", "gymnasium", "mujoco", "transformers", "vllm", "datasets", "tokenizers")


def _folder_packages() -> set[str]:
    """Package names implied by the folders on disk that hold an __init__.py, under the mapping."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    found = set()
    for pkg, folder in mapping.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(root).parts
            found.add(".".join((pkg, *rel)))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed == _folder_packages(), (
        "pyproject.toml [tool.setuptools] packages must list every folder with an __init__.py "
        "(an unlisted one imports in editable mode and vanishes from the wheel)"
    )


def test_algorithms_and_envs_install_inside_the_package():
    import pairgrpo_rllib.algorithms as algos
    import pairgrpo_rllib.envs as envs

    assert Path(algos.__file__).resolve().parent == REPO / "algorithms"
    assert Path(envs.__file__).resolve().parent == REPO / "envs"
    assert Path(pairgrpo_rllib.__file__).resolve().parent == REPO / "pairgrpo_rllib"


@pytest.mark.parametrize("name", ["algorithms", "envs"])
def test_bare_top_level_names_are_not_importable(name):
    # From a neutral directory: neither the repo root nor an installed top-level package provides them.
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({name!r}) is None else 1)",
        ],
        cwd="/tmp",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, (
        f"`import {name}` resolves to something; it must only exist as pairgrpo_rllib.{name}"
    )


def test_ruff_bans_bare_imports_and_the_repo_is_clean():
    ruff = shutil.which("ruff")
    assert ruff is not None, "ruff comes with the dev extra: pip install -e '.[dev]'"
    for name in ("algorithms", "envs"):
        res = subprocess.run(
            [ruff, "check", "--stdin-filename", "pairgrpo_rllib/_probe.py", "-"],
            input=f"import {name}\n\nprint({name})\n",
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 1 and "TID251" in res.stdout, res.stdout
    res = subprocess.run(
        [ruff, "check", "--stdin-filename", "pairgrpo_rllib/_probe.py", "-"],
        input="from . import losses\n\nprint(losses)\n",
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1 and "TID252" in res.stdout, "relative imports must be banned too"
    res = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout


def test_pytest_runs_in_importlib_mode_without_a_root_conftest():
    assert "--import-mode=importlib" in PYPROJECT["tool"]["pytest"]["ini_options"]["addopts"]
    assert not (REPO / "conftest.py").exists(), "a root conftest puts the repo root on sys.path"


def _core_modules() -> list[str]:
    """Every module of the math layer, found on disk (no hand-kept list)."""
    mods = []
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(REPO / "pairgrpo_rllib").with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods.append(".".join(("pairgrpo_rllib", *parts)))
    return mods


def _imports(path: Path) -> list[str]:
    """Absolute module names a source file imports (at any depth: lazy imports count too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_core_modules_are_found_on_disk():
    mods = _core_modules()
    for expected in (
        "losses",
        "hard_pair",
        "contract",
        "distributions",
        "defaults",
        "names",
        "theory.bandit",
    ):
        assert f"pairgrpo_rllib.core.{expected}" in mods


def test_math_layer_imports_no_framework_at_runtime():
    mods = _core_modules()
    code = (
        f"import sys, importlib\nfor m in {mods!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}]\nprint(','.join(bad))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd="/tmp", capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"importing the math layer pulled in {res.stdout.strip()}"


def test_math_layer_source_imports_only_torch_stdlib_and_itself():
    allowed_roots = {"torch", *sys.stdlib_module_names}
    for path in sorted(CORE.rglob("*.py")):
        for name in _imports(path):
            ok = name.split(".")[0] in allowed_roots or name.startswith("pairgrpo_rllib.core")
            assert ok, f"{path.relative_to(REPO)} imports {name}: the math layer is torch + stdlib only"


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("pairgrpo_rllib/core", ("pairgrpo_rllib.app", "pairgrpo_rllib.algorithms", "pairgrpo_rllib.envs")),
        ("algorithms", ("pairgrpo_rllib.app",)),
        ("envs", ("pairgrpo_rllib.app", "pairgrpo_rllib.algorithms")),
        ("pairgrpo_rllib/judges", ("pairgrpo_rllib.app", "pairgrpo_rllib.algorithms")),
        ("pairgrpo_rllib/evaluation", ("pairgrpo_rllib.app", "pairgrpo_rllib.algorithms")),
    ],
)
def test_imports_point_only_downward(folder, forbidden):
    """math <- glue (algorithms -> envs, never back) <- entry points (app)."""
    for path in sorted((REPO / folder).rglob("*.py")):
        for name in _imports(path):
            assert not name.startswith(forbidden), (
                f"{path.relative_to(REPO)} imports {name} (an upward import)"
            )


def test_docs_and_code_cite_no_file_outside_the_repository():
    pattern = re.compile(
        r"\.\./shared|seed 00[0-9]|seeds?/00[0-9]|RLLIB_NOTES|LLM_DESIGN|STYLE\.md|ALGORITHMS\.md"
    )
    offenders = []
    for path in REPO.rglob("*"):
        if path.suffix not in (".py", ".md", ".yaml", ".toml", ".sh") or any(
            part in (".venv", ".git", "data") for part in path.relative_to(REPO).parts
        ):
            continue
        for k, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line) and path != Path(__file__):
                offenders.append(f"{path.relative_to(REPO)}:{k}: {line.strip()[:100]}")
    assert not offenders, "cite papers by name (docs/references.md), not by outside paths:\n" + "\n".join(
        offenders
    )


def test_theory_command_does_not_import_ray():
    code = (
        "import sys\nfrom pairgrpo_rllib.app.cli import main\n"
        "rc = main(['theory', '--algorithm', 'grpo', '--group-size', '2', '--beta', '1', '--pref', '0.5', '--json'])\n"
        "assert rc == 0\nprint('RAY' if 'ray' in sys.modules else 'NORAY', file=sys.stderr)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd="/tmp", capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().endswith("NORAY")


@pytest.mark.slow
def test_built_wheel_contains_every_package(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    wheel = next(tmp_path.glob("pairgrpo_rllib-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in PYPROJECT["tool"]["setuptools"]["packages"]:
        assert pkg.replace(".", "/") + "/__init__.py" in names, f"{pkg} missing from the wheel"
    assert "pairgrpo_rllib/core/theory/bandit.py" in names
    assert not any(n.startswith(("algorithms/", "envs/", "tests/")) for n in names), (
        "bare top-level folders leaked"
    )
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pairgrpo = pairgrpo_rllib.app.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
