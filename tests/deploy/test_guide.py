"""deploy/README.md, the scale-out guide: the topics it must cover, and no dead paths."""

from __future__ import annotations

import json
import re

from tests.deploy.deployfiles import (
    DEPLOY,
    DOCUMENTED_VARS,
    LOUPE_VAR,
    README,
    ROOT,
    check_loupe_vars,
)


def test_readme_covers_the_scale_out_guide() -> None:
    text = README.read_text()
    lowered = text.lower()
    for topic in [
        "shard_number",
        "replication_factor",
        "write_consistency_factor",
        "quantization",
        "on_disk",
        "snapshot",
        "pg_dump",
        "restore",
        "tls",
        "LOUPE_API_KEYS",
        "TORCH_VARIANT=cu128",
        "LOUPE_DEVICE=cuda",
    ]:
        assert topic.lower() in lowered, f"deploy/README.md does not cover {topic}"
    check_loupe_vars(set(LOUPE_VAR.findall(text)), "deploy/README.md")


def test_readme_points_only_at_files_that_exist() -> None:
    text = README.read_text()
    # deploy/.env is the operator's copy of .env.example, never committed.
    named = set(re.findall(r"(?<![\w/.-])deploy/[\w./-]*[\w/]", text)) - {"deploy/.env"}
    linked = {t for t in re.findall(r"\]\(([^)#]+)\)", text) if "://" not in t}
    assert named and linked
    missing = sorted(p for p in named if not (ROOT / p).exists())
    missing += sorted(t for t in linked if not (DEPLOY / t).exists())
    assert not missing, f"deploy/README.md names missing files: {missing}"


def test_documented_variables_are_settings() -> None:
    # The deploy files are written against these names (issue 9); this fails
    # if the service renames or drops one the deploy side depends on.
    check_loupe_vars(DOCUMENTED_VARS, "the documented LOUPE_* list")


def test_readme_source_examples_are_valid_source_configs() -> None:
    from connectors.registry import parse_config

    bodies = [json.loads(b) for b in re.findall(r"-d '(\{.*?\})'", README.read_text())]
    sources = [b for b in bodies if "kind" in b]
    assert sources, "the guide shows no source to add"
    for body in sources:
        parse_config(body["kind"], body["config"])  # raises on a field the connector does not take
