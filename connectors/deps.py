"""Optional third-party packages: the `pip install` line that brings each, for our error messages."""

from __future__ import annotations

from collections.abc import Mapping

from service.errors import MissingDependency

# The distribution behind each top-level module a connector may import; the rest share their name.
PIP_NAMES: Mapping[str, str] = {
    "boto3": "boto3",
    "botocore": "boto3",
    "sqlalchemy": "'sqlalchemy>=2.0'",
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
    "mariadb": "mariadb",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
    "oracledb": "oracledb",
    "asyncpg": "asyncpg",
    "aiosqlite": "aiosqlite",
}


def pip_line(module: str) -> str:
    """The `pip install` line that brings `module` (a top-level name, as ImportError.name gives it)."""
    top = module.split(".", 1)[0]
    return f"pip install {PIP_NAMES.get(top, top)}"


def missing_dependency(exc: ImportError, *, needed_for: str) -> MissingDependency:
    """Our error for an ImportError of a third-party package; it names the install line."""
    module = (exc.name or "").split(".", 1)[0]
    if not module:
        return MissingDependency(f"{needed_for} needs a package that is not installed here: {exc}")
    return MissingDependency(
        f"{needed_for} needs the Python package {module!r}, which is not installed where Loupe runs: "
        f"{pip_line(module)}"
    )
