"""The layout contracts of pyproject.toml ([tool.importlinter]) hold, and would catch a break."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages under `cwd`, with its pyproject.toml (only `contracts`, if given)."""
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(cwd / "pyproject.toml")]
    for contract in contracts:
        args += ["--contract", contract]
    # cwd first on the path, so the packages found are the ones under `cwd` (not the installed ones).
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_layout_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# A miniature of the tree, with the modules each contract names and the imports they may have.
MINIATURE = {
    "connectors/__init__.py": "",
    "connectors/base.py": "from service import errors\n",
    "connectors/local.py": "from connectors import base\n",
    "service/__init__.py": "",
    "service/errors.py": "",
    "service/schemas.py": "",
    "service/encoder/__init__.py": "import open_clip\nimport torch\n",
    "service/encoder/train.py": "import torch\nfrom service.encoder import tiny\n",
    "service/encoder/tiny.py": "",
    "service/index/__init__.py": "from service import errors\n",
    "service/catalog/__init__.py": "",
    "service/catalog/catalog.py": "from connectors import local\nfrom service import encoder, index\n",
    "service/export/__init__.py": "from service.catalog import catalog\n",
    "service/jobs/__init__.py": "from service.catalog import catalog\nfrom service.export import base\n",
    "service/export/base.py": "from service import schemas\n",
    "service/api/__init__.py": "",
    "service/api/app.py": "import fastapi\nfrom service import jobs, schemas\n",
    "service/api/routes.py": "from service.api import app\nfrom service.catalog import assets\n",
    "service/catalog/assets.py": "from service import schemas\n",
    "service/catalog/distributed.py": "import ray\nfrom service.catalog import catalog\n",
    "service/server.py": "from service.api import app\n",
    "service/client.py": "import httpx\nfrom service.catalog import catalog\n",
    "service/cli/__init__.py": "from service import client, server\n",
}

BREAKS = {
    "a cycle between two connectors": ("acyclic", "connectors/base.py", "from connectors import local\n"),
    "a cycle between two service packages": ("acyclic", "service/index/__init__.py", "import service.jobs\n"),
    "a cycle inside a service package": (
        "acyclic",
        "service/encoder/tiny.py",
        "from service.encoder import train\n",
    ),
    "the catalog importing a route": (
        "api-on-top",
        "service/catalog/jobs.py",
        "from service.api import app\n",
    ),
    "the CLI importing a route": ("api-on-top", "service/cli/sync.py", "from service.api import app\n"),
    "torch outside the encoder": ("torch-in-encoder", "service/catalog/embed.py", "import torch\n"),
    "open_clip outside the encoder": ("torch-in-encoder", "service/index/text.py", "import open_clip\n"),
    "ray outside the distributed engine": (
        "ray-in-distributed",
        "service/catalog/catalog.py",
        "import ray\n",
    ),
    "a connector importing fastapi": (
        "connectors-know-no-http",
        "connectors/web.py",
        "from fastapi import Request\n",
    ),
    "a connector importing the API": (
        "connectors-know-no-http",
        "connectors/api.py",
        "import service.api.app\n",
    ),
    "an exporter importing the CLI": (
        "domain-below-cli",
        "service/export/cli.py",
        "from service.cli import main\n",
    ),
    "the index importing the client": (
        "domain-below-cli",
        "service/index/remote.py",
        "import service.client\n",
    ),
}


NAMING_KEYS = ("ancestors", "source_modules", "forbidden_modules", "protected_modules", "allowed_importers")


def named_by_contracts() -> dict[str, str]:
    """Files that give every module the contracts name a place in the miniature.

    A contract naming a package the miniature lacks fails with "does not exist", and a
    protected third-party module nobody imports with "not present in the graph": so a
    package added to a contract needs no edit here. Internal modules become empty
    packages; a protected external one is imported by its first allowed importer.
    """
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    roots = set(config["root_packages"])
    files: dict[str, str] = {}
    for contract in config["contracts"]:
        for key in NAMING_KEYS:
            for name in contract.get(key, []):
                if name.split(".")[0] in roots:
                    files.setdefault(name.replace(".", "/") + "/__init__.py", "")
        if contract["type"] == "protected":
            importer = contract["allowed_importers"][0].replace(".", "/") + "/__init__.py"
            for name in contract["protected_modules"]:
                if name.split(".")[0] not in roots:
                    files[importer] = files.get(importer, "") + f"import {name}\n"
    return files


def write_miniature(root: Path, extra: dict[str, str]) -> Path:
    for name, text in {**MINIATURE, **extra}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.read_text() + text if path.exists() else text)
    for name, text in named_by_contracts().items():
        module = root / name
        if module.exists() or module.parent.with_suffix(".py").exists():
            if text:
                target = module if module.exists() else module.parent.with_suffix(".py")
                target.write_text(target.read_text() + text)
            continue
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(text)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")  # the very contracts under test
    return root


def test_the_miniature_keeps_every_contract(tmp_path: Path) -> None:
    # Without this, a break below could be reported for a reason the miniature had all along.
    result = lint_imports(write_miniature(tmp_path, {}))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", BREAKS)
def test_a_contract_catches(case: str, tmp_path: Path) -> None:
    contract, path, line = BREAKS[case]
    # `path` gets `line` appended (or is created with it): an import the layout forbids.
    result = lint_imports(write_miniature(tmp_path, {path: line}), contract)
    assert result.returncode == 1 and "BROKEN" in result.stdout, result.stdout + result.stderr
