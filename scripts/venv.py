"""Point `.venv` at a cached virtual environment keyed by the dependency list.

A fresh clone reuses an environment that an earlier clone built with the same
dependencies; a change to the dependency list builds a new one. The project
itself is installed editable whenever the environment last ran another clone
or another pyproject.toml, so the cached environment always runs the clone
that called it, and `make test` does not reinstall (and re-warn) every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LOUPE_VENV_CACHE", Path.home() / ".cache" / "loupe" / "venvs"))
# Bump when the way the environment is built changes (not only its inputs).
RECIPE = "1"
# Which clone (and which pyproject.toml) the environment's editable install is of.
STAMP = ".editable"
# setuptools reports every editable install of a flat layout with a multi-line "Editable
# installation ... Please be careful with folders ..." block (an InformationOnly warning, not an
# error); pip relays it even with --quiet. Only that message is ignored: a failed install still
# prints pip's error and stops the build.
QUIET_EDITABLE = "ignore:Editable installation."


def dependency_key() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = {
        "recipe": RECIPE,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "deps": sorted(project.get("dependencies", [])),
        "extras": {k: sorted(v) for k, v in project.get("optional-dependencies", {}).items()},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, env=env)


def quiet_editable_env() -> dict[str, str]:
    """This process's environment, with setuptools' editable-install notice ignored."""
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), QUIET_EDITABLE) if w)
    return env


def install_stamp() -> str:
    """What the editable install depends on: this clone's path and its pyproject.toml."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return f"{ROOT}\n{digest}\n"


def installed_here(env: Path) -> bool:
    """Whether `env` runs this clone's code with this pyproject.toml's metadata."""
    stamp = env / STAMP
    if not stamp.is_file() or stamp.read_text() != install_stamp():
        return False
    # The finder setuptools writes maps each package to its directory: a `pip install -e` run by
    # hand from another clone changes it without touching the stamp.
    finders = list(env.glob("lib/python*/site-packages/__editable___loupe_*_finder.py"))
    return any(repr(str(ROOT / "service")) in f.read_text() for f in finders)


def build(env: Path) -> None:
    if env.exists():
        shutil.rmtree(env)  # an unfinished build: start again
    run(sys.executable, "-m", "venv", env)
    pip = env / "bin" / "pip"
    run(pip, "install", "--quiet", "--upgrade", "pip", "setuptools>=64", "wheel")
    # torch first, from the pair this machine ships (see ENVIRONMENT.md).
    run(pip, "install", "--quiet", "torch==2.14.1", "torchvision==0.29.1")
    run(pip, "install", "--quiet", "-e", f"{ROOT}[dev]", env=quiet_editable_env())
    (env / STAMP).write_text(install_stamp())
    (env / ".complete").write_text(dependency_key() + "\n")


def main() -> int:
    env = CACHE / dependency_key()
    if not (env / ".complete").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build(env)
    link = ROOT / ".venv"
    if link.is_symlink() or link.exists():
        if link.resolve() != env.resolve():
            if link.is_symlink() or link.is_file():
                link.unlink()
            else:
                shutil.rmtree(link)
    if not link.exists():
        link.symlink_to(env)
    if not installed_here(env):
        # Re-point the editable install at this clone (cheap; no dependency resolution).
        subprocess.run(
            [
                str(env / "bin" / "pip"),
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "-e",
                str(ROOT),
            ],
            check=True,
            env=quiet_editable_env(),
        )
        (env / STAMP).write_text(install_stamp())
    return 0


if __name__ == "__main__":
    sys.exit(main())
