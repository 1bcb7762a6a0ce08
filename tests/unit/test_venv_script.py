"""scripts/venv.py reinstalls the clone only when the cached environment runs another one."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "venv.py"


@pytest.fixture(scope="module")
def venv_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loupe_venv_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finder(env: Path, root: Path) -> Path:
    site = env / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    finder = site / "__editable___loupe_0_1_0_finder.py"
    finder.write_text(f"MAPPING = {{'service': {str(root / 'service')!r}}}\n")
    return finder


def test_an_environment_installed_from_this_clone_is_left_alone(venv_script: ModuleType, tmp_path: Path):
    env = tmp_path / "env"
    _finder(env, venv_script.ROOT)
    assert not venv_script.installed_here(env)  # no stamp yet: install
    (env / venv_script.STAMP).write_text(venv_script.install_stamp())
    assert venv_script.installed_here(env)


def test_another_clone_or_another_pyproject_reinstalls(venv_script: ModuleType, tmp_path: Path):
    env = tmp_path / "env"
    finder = _finder(env, tmp_path / "other-clone")
    (env / venv_script.STAMP).write_text(venv_script.install_stamp())
    assert not venv_script.installed_here(env)  # a `pip install -e` from elsewhere re-pointed it
    finder.write_text(f"MAPPING = {{'service': {str(venv_script.ROOT / 'service')!r}}}\n")
    assert venv_script.installed_here(env)
    root, _digest, _ = venv_script.install_stamp().split("\n")
    (env / venv_script.STAMP).write_text(f"{root}\nolder-pyproject\n")
    assert not venv_script.installed_here(env)


def test_only_the_editable_notice_is_ignored(venv_script: ModuleType, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONWARNINGS", "error::DeprecationWarning")
    env = venv_script.quiet_editable_env()
    assert env["PYTHONWARNINGS"] == "error::DeprecationWarning,ignore:Editable installation."
