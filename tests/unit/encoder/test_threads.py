"""Each encoder path sets its own torch thread count, whatever another thread set before."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from service.encoder import clip
from service.encoder.clip import ClipEncoder

TINY = "test-threads-vit"


@pytest.fixture(scope="module")
def enc(tmp_path_factory: pytest.TempPathFactory) -> ClipEncoder:
    d = tmp_path_factory.mktemp("configs")
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1},
    }
    (d / f"{TINY}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d)
    return ClipEncoder(TINY, None, device="cpu", query_threads=1, ingest_threads=None)


def in_thread(fn: Any) -> Any:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))


def threads_seen_by_image_tower(enc: ClipEncoder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = enc.model.encode_image

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return real(x)

    monkeypatch.setattr(enc.model, "encode_image", spy)
    return seen


def test_ingest_uses_the_machine_default_after_a_query_set_one_thread(enc, monkeypatch):
    if clip.DEFAULT_THREADS < 2:
        pytest.skip("needs a machine where torch defaults to more than one thread")
    seen = threads_seen_by_image_tower(enc, monkeypatch)
    in_thread(lambda: enc.encode_text("a query first"))  # sets 1 thread, and the default for new threads
    in_thread(lambda: enc.encode_prepared([enc.prepare(image())]))  # a fresh ingest thread
    assert seen == [clip.DEFAULT_THREADS]


def test_decode_workers_prepare_on_one_thread(enc):
    torch.set_num_threads(clip.DEFAULT_THREADS)
    assert in_thread(lambda: (enc.prepare(image()), torch.get_num_threads())[1]) == 1


def test_queries_keep_their_own_count_after_ingest(enc, monkeypatch):
    seen = threads_seen_by_image_tower(enc, monkeypatch)
    enc.encode_prepared([enc.prepare(image())])
    enc.encode_images([image()])
    assert seen[-1] == enc.query_threads


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread niceness is a Linux feature")
def test_ingest_batches_run_on_a_lower_priority_thread_and_searches_do_not(monkeypatch):
    nice = ClipEncoder(TINY, None, device="cpu", ingest_nice=5)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[tuple[str, int]] = []
    real = nice.model.encode_image

    def spy(x: torch.Tensor) -> torch.Tensor:
        prio = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen.append((threading.current_thread().name, prio))
        return real(x)

    monkeypatch.setattr(nice.model, "encode_image", spy)
    vecs = nice.encode_prepared([nice.prepare(image())])
    nice.encode_images([image()])
    assert vecs.shape == (1, 16)
    assert seen[0][0].startswith("loupe-encode") and seen[0][1] == max(mine, 5)
    assert seen[1][1] == mine  # a search runs at the caller's priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_unset_query_threads_take_every_core_alone_and_one_beside_a_sync_batch(enc, monkeypatch):
    if clip.DEFAULT_THREADS < 2:
        pytest.skip("needs a machine where torch defaults to more than one thread")
    monkeypatch.setattr(enc, "query_threads", None)
    seen: list[tuple[str, int]] = []
    in_batch, release = threading.Event(), threading.Event()
    real_image, real_text = enc.model.encode_image, enc.model.transformer.forward

    def image_spy(x: torch.Tensor) -> torch.Tensor:
        if threading.current_thread().name.startswith("loupe-encode"):
            in_batch.set()
            assert release.wait(30)
        return real_image(x)

    def text_spy(*args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return real_text(*args, **kwargs)

    monkeypatch.setattr(enc.model, "encode_image", image_spy)
    monkeypatch.setattr(enc.model.transformer, "forward", text_spy)
    enc.encode_texts(["alone"])
    batch = threading.Thread(target=lambda: enc.encode_prepared([enc.prepare(image())]))
    batch.start()
    try:
        assert in_batch.wait(30)
        enc.encode_texts(["beside a sync batch"])
    finally:
        release.set()
        batch.join()
    enc.encode_texts(["alone again"])
    assert [n for _, n in seen] == [clip.DEFAULT_THREADS, 1, clip.DEFAULT_THREADS]
