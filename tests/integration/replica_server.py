"""`loupe` with the FakeEncoder in place of CLIP, for tests that run servers as subprocesses.

    python -m tests.integration.replica_server serve --port 8123 [--host H] [--insecure]

Everything but the encoder is the real command: settings from LOUPE_* variables
and `.env`, `service.cli.main`, `service.server.serve`, the app's lifespan that
opens the catalog (state store, index) and starts the job runner. The encoder
package is replaced before anything imports it, so torch is never loaded and a
replica starts in a second or two instead of the time torch takes to import.

LOUPE_TEST_ENCODE_DELAY_S makes every encoded batch take that long, as CLIP on
a CPU does, so a test can catch a sync while it runs.
"""

from __future__ import annotations

import os
import sys
import time
import types
from collections.abc import Sequence

import numpy as np

from tests.fakes import FakeEncoder

DELAY_ENV = "LOUPE_TEST_ENCODE_DELAY_S"


class SlowFakeEncoder(FakeEncoder):
    """FakeEncoder whose batches take `delay_s` each."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def encode_prepared(self, items: Sequence[np.ndarray]) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().encode_prepared(items)


def load_encoder(_settings: object) -> SlowFakeEncoder:
    return SlowFakeEncoder(float(os.environ.get(DELAY_ENV, "0")))


def main(argv: Sequence[str]) -> int:
    import service

    stub = types.ModuleType("service.encoder", "FakeEncoder standing in for CLIP (tests only)")
    stub.load_encoder = load_encoder  # type: ignore[attr-defined]
    sys.modules["service.encoder"] = stub
    service.encoder = stub  # type: ignore[attr-defined]
    from service import cli

    return cli.main(list(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
