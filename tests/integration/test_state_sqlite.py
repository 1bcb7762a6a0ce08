"""The SQLite state store under concurrent claimers: each queued job goes to exactly one of them.

SQLite has no SKIP LOCKED; the guarantee rests on its transactions being real. The
Python driver, left to itself, opens a transaction only before a write, so a claim's
SELECT and its UPDATE ran apart and two processes took the same job. Here several
processes (as `loupe serve` and a CLI sync share one home) and threads each claim
from one state.db file until it is empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from service.jobs.queue import JobQueue
from service.state import StateStore

ROOT = Path(__file__).resolve().parents[2]
JOBS = 300

CLAIMER = """
import json, sys, threading
from service.jobs.queue import JobQueue
from service.state import StateStore, utcnow

url, name, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
queue = JobQueue(StateStore(url))
claims, barrier = [], threading.Barrier(threads)

def work(t):
    owner = f"{name}-t{t}"
    barrier.wait()
    while (job := queue.claim(owner, kinds=("bench",), stale_after_s=3600)) is not None:
        claims.append([job.id, owner])
        queue.update(job.id, owner=owner, state="succeeded", finished_at=utcnow())

print("ready", flush=True)
sys.stdin.readline()
pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for th in pool:
    th.start()
for th in pool:
    th.join()
print(json.dumps(claims), flush=True)
"""


def test_each_job_is_claimed_once_by_processes_and_threads_sharing_one_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    queue = JobQueue(store)
    ids = {queue.create("bench", options={"i": i}).id for i in range(JOBS)}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, f"p{n}", "2"],
            cwd=ROOT,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for n in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.communicate()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    claims = [(job_id, owner) for out, _ in outputs for job_id, owner in json.loads(out)]
    counted = Counter(job_id for job_id, _ in claims)
    assert [j for j, n in counted.items() if n > 1] == [], "a job was claimed twice"
    assert set(counted) == ids, "a job was never claimed"
    # What each claimer was told is what the store recorded, and work was shared.
    assert all(queue.get(job_id).owner == owner for job_id, owner in claims)
    assert len({owner.split("-")[0] for _, owner in claims}) >= 2, "no contention between processes"
    store.close()
