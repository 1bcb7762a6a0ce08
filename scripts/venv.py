"""Point `.venv` at a cached virtual environment keyed by the dependency list.

A fresh clone reuses an environment that an earlier clone built with the same
dependencies; a change to the dependency list builds a new one. The project
itself is installed editable on every run (a second or two), so the cached
environment always runs the clone that called it.
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


def dependency_key() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = {
        "recipe": RECIPE,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "deps": sorted(project.get("dependencies", [])),
        "extras": {k: sorted(v) for k, v in project.get("optional-dependencies", {}).items()},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def build(env: Path) -> None:
    if env.exists():
        shutil.rmtree(env)  # an unfinished build: start again
    run(sys.executable, "-m", "venv", env)
    pip = env / "bin" / "pip"
    run(pip, "install", "--quiet", "--upgrade", "pip", "setuptools>=64", "wheel")
    # torch first, from the pair this machine ships (see ENVIRONMENT.md).
    run(pip, "install", "--quiet", "torch==2.14.1", "torchvision==0.29.1")
    run(pip, "install", "--quiet", "-e", f"{ROOT}[dev]")
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
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
