"""The connector registry: kinds by name, no cycle with base, and a missing package named by its pip line."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.registry import build, connector_class, kinds, parse_config
from service.errors import InvalidConfig, MissingDependency

ROOT = Path(__file__).resolve().parents[3]


def test_every_built_in_kind_is_listed_and_loads() -> None:
    assert kinds() == ["local", "s3", "sql"]
    for kind in kinds():
        cls = connector_class(kind)
        assert cls.kind == kind and cls.config_model is not None


def test_an_unknown_kind_names_the_valid_ones() -> None:
    with pytest.raises(InvalidConfig, match="unknown source kind 'ftp'; valid kinds: local, s3, sql"):
        build("p", "ftp", {})


def test_base_imports_no_connector_kind() -> None:
    # The cycle this registry removed: base imported local inside a function, local imported base.
    tree = ast.parse((ROOT / "connectors" / "base.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("connectors")], imported
    assert "__import__" not in (ROOT / "connectors" / "base.py").read_text()


def _without(module: str, code: str) -> str:
    """Run `code` in a fresh interpreter where importing `module` fails as if it were not installed."""
    # A None entry in sys.modules is Python's own way to make an import raise ImportError.
    prelude = f"import sys; sys.modules[{module!r}] = None\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("module", "kind", "line"),
    [("boto3", "s3", "pip install boto3"), ("sqlalchemy", "sql", "sqlalchemy>=2.0")],
)
def test_a_kind_whose_package_is_missing_stays_listed_and_names_the_pip_line(
    module: str, kind: str, line: str
) -> None:
    code = (
        "from connectors.registry import kinds, connector_class\n"
        "from service.errors import MissingDependency\n"
        "print(','.join(kinds()))\n"
        "try:\n"
        f"    connector_class({kind!r})\n"
        "except MissingDependency as exc:\n"
        "    print(exc.status_code, exc.detail)\n"
    )
    listed, error = _without(module, code).splitlines()
    assert listed == "local,s3,sql"
    assert error.startswith("422 ") and f"the {kind} source kind" in error and line in error


def test_sql_rows_with_s3_uris_name_boto3_when_it_is_missing(tmp_path: Path) -> None:
    code = (
        "from connectors.uris import UriOpener\n"
        "from connectors.base import AssetRecord\n"
        "from service.errors import MissingDependency\n"
        "try:\n"
        "    UriOpener().open(AssetRecord(key='k', uri='s3://bucket/k.png', version=''))\n"
        "except MissingDependency as exc:\n"
        "    print(exc.detail)\n"
    )
    assert "reading s3:// URIs needs the Python package 'boto3'" in _without("boto3", code)
    assert "pip install boto3" in _without("botocore", code)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql+nosuch://u:secret@h/d", ["no SQLAlchemy driver", "pip install 'psycopg[binary]'"]),
        ("nosuchdb://u:secret@h/d", ["no SQLAlchemy driver", "pip install pymysql"]),
        ("mysql+mysqldb://u:secret@h/d", ["'MySQLdb'", "pip install mysqlclient", "mysql+pymysql://"]),
        ("postgresql+psycopg2://u:secret@h/d", ["'psycopg2'", "pip install psycopg2-binary"]),
    ],
)
def test_a_database_driver_that_is_not_installed_names_its_pip_line(url: str, words: list[str]) -> None:
    if "psycopg2" in url and importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed here, so it cannot be missing")
    with pytest.raises(MissingDependency) as info:
        build("p", "sql", {"url": url, "table": "t", "key": "id", "uri_column": "p"})
    assert all(w in info.value.detail for w in words), info.value.detail
    assert "secret" not in info.value.detail


def test_parse_config_names_the_field() -> None:
    with pytest.raises(InvalidConfig, match="invalid s3 source config: bucket: Field required"):
        parse_config("s3", {})
