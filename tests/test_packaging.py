"""The layout guardrails of STYLE.md, each one seen failing in a trial, and the math-layer boundary."""

from __future__ import annotations

import ast
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
MATH_MODULES = (
    "advantages",
    "preferences",
    "kl",
    "losses",
    "hard_pair",
    "diagnostics",
    "_validation",
    "constants",
)
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


def test_math_layer_imports_no_framework_at_runtime():
    mods = ", ".join(f"pairgrpo_rllib.{m}" for m in MATH_MODULES)
    code = (
        f"import sys, importlib\nfor m in {[f'pairgrpo_rllib.{m}' for m in MATH_MODULES]!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}]\nprint(','.join(bad))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd="/tmp", capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"importing {mods} pulled in {res.stdout.strip()}"


def test_math_layer_source_imports_only_torch_and_stdlib():
    allowed_roots = {
        "torch",
        "math",
        "__future__",
        "collections",
        "typing",
        "dataclasses",
        "functools",
        "itertools",
    }
    allowed_local = {f"pairgrpo_rllib.{m}" for m in MATH_MODULES} | {"pairgrpo_rllib"}
    for m in MATH_MODULES:
        tree = ast.parse((REPO / "pairgrpo_rllib" / f"{m}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                ok = name.split(".")[0] in allowed_roots or name in allowed_local
                assert ok, f"pairgrpo_rllib/{m}.py imports {name}: the math layer is torch + stdlib only"


def test_theory_command_does_not_import_ray():
    code = (
        "import sys\nfrom pairgrpo_rllib.cli import main\n"
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
    assert "pairgrpo_rllib/theory/bandit.py" in names
    assert not any(n.startswith(("algorithms/", "envs/", "tests/")) for n in names), (
        "bare top-level folders leaked"
    )
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pairgrpo = pairgrpo_rllib.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
