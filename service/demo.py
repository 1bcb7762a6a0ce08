"""`loupe demo`: a synthetic image set, ingested with the offline model, searched three ways, served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.catalog.catalog import Catalog
from service.config import Settings
from service.errors import SourceNotFound
from service.schemas import SearchRequest

DEMO_SOURCE = "demo"
DEMO_SEED = 424_242  # below the training seed ranges (service.encoder.tiny): unseen images


def demo_dir(settings: Settings, n: int) -> Path:
    return settings.home / "demo-data" / f"shapes-{DEMO_SEED}-{n}"


def ensure_dataset(settings: Settings, n: int) -> Path:
    """Generate the demo images once; a finished set is marked and reused."""
    from service.synth.dataset import write_dataset

    root = demo_dir(settings, n)
    done = root / ".complete"
    if not done.exists():
        print(f"generating {n} synthetic images in {root} ...", flush=True)
        write_dataset(root, n, DEMO_SEED, edge_cases=True, extra_metadata=True)
        done.write_text("ok\n")
    return root


def ensure_source(catalog: Catalog, root: Path) -> None:
    try:
        row = catalog.state.get_source(DEMO_SOURCE)
        if row.config.get("path") == str(root.resolve()):
            return
        catalog.remove_source(DEMO_SOURCE)
    except SourceNotFound:
        pass
    catalog.add_source(DEMO_SOURCE, "local", {"path": str(root)})


def example_searches(catalog: Catalog) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Three searches that show what Loupe does, with their top hits."""
    examples: list[tuple[str, dict[str, Any]]] = [
        ("text search", {"text": "a red star", "limit": 8}),
        (
            "text search under a metadata filter",
            {"text": "a blue circle", "filter": {"site": "boston", "split": "train"}, "limit": 8},
        ),
    ]
    # A crescent is one of the rare kinds: about 1 % of the demo images.
    examples.append(("finding a rare kind (~1 % of the images) by text", {"text": "a crescent", "limit": 8}))
    blue_circles, _ = catalog.list_assets(filter={"color": "blue", "shape": "circle"}, limit=1, cursor=None)
    if blue_circles:
        examples.append(
            ("search by example: more like one blue circle", {"like": [blue_circles[0]["id"]], "limit": 8})
        )
    out = []
    for title, body in examples:
        hits, _ = catalog.search(SearchRequest.model_validate(body))
        out.append((title, body, hits))
    return out


def describe_hit(hit: dict[str, Any]) -> str:
    meta = hit["asset"]["metadata"]
    fields = ", ".join(f"{k}={meta[k]}" for k in ("color", "shape", "kind", "site", "split") if k in meta)
    return f"{hit['score']:.3f}  {hit['asset']['key']}  {fields}"


def print_examples(catalog: Catalog, url: str | None) -> None:
    for title, body, hits in example_searches(catalog):
        print(f"\n== {title}")
        if url:
            print(
                f"   curl -s {url}/api/v1/search -H 'content-type: application/json' -d '{json.dumps(body)}'"
            )
        for hit in hits:
            print("   " + describe_hit(hit))
