"""Settings: one root object read from LOUPE_* environment variables and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
OFFLINE_MODEL = "loupe-tiny"


class IndexSettings(BaseModel):
    """Vector index tuning (LOUPE_INDEX__*)."""

    collection: str = "assets"
    timeout_s: float = 10.0
    retries: int = 2
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    # Filters estimated to keep fewer points than this run as exact scans:
    # HNSW recall collapses on selective multi-field filters.
    exact_below: int = 20_000
    hnsw_ef: int = 128
    # int8: the HNSW-indexed segments keep a scalar int8 copy of the vectors in RAM, search it and
    # rescore the best `oversampling` x k with the full vectors, which stay on disk (a quarter of
    # the memory at 1M assets; benchmarks/RESULTS.md). none: search the full vectors.
    quantization: Literal["int8", "none"] = "int8"
    oversampling: float = Field(default=2.0, ge=1.0, le=16.0)
    optimize_after_sync: bool = True
    # A payload write to at least this many points of an embedded index (a signal over the catalog)
    # goes through the optimizer's child: it moves the points and rebuilds their graph in its own
    # memory, and this process loads the result (service/index/edge_store.py, `write_through`;
    # ~1.5 GiB less in the API process at 1,000,000 points). Smaller writes go straight in.
    write_through_min: int = Field(default=50_000, ge=1)


class IngestSettings(BaseModel):
    """Sync pipeline tuning (LOUPE_INGEST__*)."""

    batch_size: int = 32
    fetch_workers: int = 8  # downloads in flight (a source's max_concurrency overrides it)
    # Of those, how many may decode at once (unset: all). Bounding decodes to 1-2 on 2 cores only
    # slowed syncs (benchmarks/RESULTS.md); a many-core host with many downloads may want it.
    decode_workers: int | None = Field(default=None, ge=1)
    max_pixels: int = 100_000_000
    # Pixels being decoded or held decoded at once, over all fetch workers (None: no bound). A
    # decode takes its image's pixel count (from the header) before it starts and gives it back once
    # the image is reduced to the encoder's size; an image larger than the whole budget decodes
    # alone. 100 MP (one image at max_pixels) took a sync of 40 PNGs of 20-89 MP from 5.8 GB peak
    # RSS to 1.6 GB; 200 MP lets two such images decode at once, ~0.45 GB more
    # (benchmarks/RESULTS.md, decode memory). Drafted JPEGs and photo-sized PNGs rarely wait.
    max_pixels_in_flight: int | None = Field(default=100_000_000, ge=1)
    max_bytes: int = 200 * 1024 * 1024


class SyncSettings(BaseModel):
    """Which engine runs a sync, and the distributed engine's tuning (LOUPE_SYNC__*)."""

    # local: the in-process pipeline (the default). ray: reads and decodes as Ray tasks, encoding on an
    # actor pool (service/catalog/distributed.py); a sync request's `engine` overrides it.
    engine: Literal["local", "ray"] = "local"
    # unset: a Ray instance started inside this process; "auto": the cluster this machine is part of
    # (RAY_ADDRESS or a `ray start` here); "HOST:PORT": that cluster's GCS (head) address.
    ray_address: str | None = None
    ray_actors: int = Field(default=1, ge=1, le=1024)  # encoder actors (one model copy each)
    ray_num_gpus: float = Field(default=0.0, ge=0.0, le=8.0)  # per actor; > 0 runs it on CUDA in fp16
    ray_cpus_per_actor: float = Field(default=1.0, gt=0.0)
    ray_batch_size: int = Field(default=64, ge=1, le=4096)  # images per encoder call
    ray_read_batch: int = Field(default=16, ge=1, le=4096)  # assets per read+decode task
    # A task or actor call whose worker died is retried this often before the sync fails (a crash
    # that repeats on one asset must end, not loop).
    ray_max_retries: int = Field(default=3, ge=0, le=100)
    # Changed assets per Ray dataset: the cursor is saved and the actors start again after each.
    ray_chunk: int = Field(default=50_000, ge=1)
    ray_connect_timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)
    # How long a sync asking for GPUs waits for the first to join (an autoscaled GPU group starting
    # from zero); 0: a cluster without GPUs fails the sync at once.
    ray_wait_for_gpus_s: float = Field(default=0.0, ge=0.0, le=3600.0)


class Settings(BaseSettings):
    """All of Loupe's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="LOUPE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".loupe")
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    model: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED
    device: Literal["auto", "cpu", "cuda"] = "auto"
    database_url: SecretStr | None = None
    # Seconds to wait for a PostgreSQL connection: during an outage or behind a dropped route a
    # request answers 503 this soon instead of hanging in the kernel's TCP retries (minutes).
    database_connect_timeout_s: int = Field(default=5, ge=1, le=300)
    url: str | None = None  # a running `loupe serve` the CLI should talk to
    # Loupe's address as labeling tools and their users' browsers reach it (content URLs in exports);
    # unset = the address the API request came to.
    public_url: str | None = None
    api_keys: SecretStr | None = None  # "key:scope,key:scope"; scopes read, write, admin
    cors_origins: list[str] = []
    # Threads per search encode; unset: every core while nothing else encodes, one beside a sync
    # batch or another query (service/encoder/clip.py says why).
    query_threads: int | None = Field(default=None, ge=1)
    ingest_threads: int | None = None
    # Niceness of sync work in a serving process (job thread, fetch/decode workers, encoder batches):
    # searches keep their latency during a sync.
    ingest_nice: int = Field(default=10, ge=0, le=19)
    # Image tower runtime on CPU (benchmarks/RESULTS.md): onnx needs onnxruntime, onnx and onnxscript.
    encoder_backend: Literal["torch", "onnx"] = "torch"
    quantize: Literal["none", "int8"] = "none"  # dynamic int8 image tower, CPU only
    precision: Literal["auto", "fp32", "fp16"] = "auto"  # auto: fp16 on CUDA, fp32 on CPU
    max_upload_bytes: int = 20 * 1024 * 1024
    # Annotation files (a COCO instances file of 5,000 images is ~25 MB): read whole to be checked.
    max_annotation_bytes: int = 512 * 1024 * 1024
    # A running sync whose replica has not heartbeaten for this long is re-queued for another one.
    jobs_stale_after_s: float = Field(default=30.0, gt=0)
    index: IndexSettings = Field(default_factory=IndexSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)

    @field_validator("home")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("pretrained")
    @classmethod
    def _empty_is_none(cls, v: str | None) -> str | None:
        return v or None

    @property
    def state_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.home / 'state.db'}"

    @property
    def index_path(self) -> Path:
        return self.home / "index"


@lru_cache
def get_settings() -> Settings:
    return Settings()
