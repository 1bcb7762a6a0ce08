"""Waiting over the REST API for something that runs as a job (a sync, an evaluation, a signal)."""

from __future__ import annotations

import time
from typing import Any

import httpx

RUNNING = ("queued", "running")


def wait_for(
    client: httpx.Client, path: str, body: dict[str, Any], *, timeout_s: float = 60, succeeded: bool = False
) -> dict[str, Any]:
    """Poll `GET {path}/{body['id']}` until its state is neither queued nor running; with
    `succeeded`, assert that it ended so."""
    deadline = time.monotonic() + timeout_s
    while body["state"] in RUNNING:
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
        body = client.get(f"{path}/{body['id']}").json()
    if succeeded:
        assert body["state"] == "succeeded", body
    return body


def wait_job(
    client: httpx.Client, job: dict[str, Any], *, timeout_s: float = 60, succeeded: bool = False
) -> dict[str, Any]:
    """`wait_for` on `/jobs`, whether the client's base URL ends in /api/v1 or not."""
    under_api = client.base_url.path.rstrip("/").endswith("/api/v1")
    return wait_for(
        client, "/jobs" if under_api else "/api/v1/jobs", job, timeout_s=timeout_s, succeeded=succeeded
    )
