"""Tags from an OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp, TGI, OpenAI itself).

The model is far away and slow, and a catalog is thousands of products, so this module
does the plumbing once for the text and the vision tagger alike:

- products go ``endpoint_batch`` to a request, ``endpoint_concurrency`` requests in flight;
- a request that fails to connect, times out, or gets 429 / 5xx is retried with
  exponential backoff (``endpoint_retries`` times); another 4xx is a mistake a retry
  will not fix and fails at once; an endpoint that never answers raises one
  :class:`~visearch.errors.EndpointError` naming the URL;
- every product's answer is cached in SQLite under the sha256 of (model, prompt, the
  product's request content), so a second run over the same catalog sends nothing;
- an answer that is not a JSON object, or lacks some of the batch's product ids, is
  asked for once more (for the missing products only); products still without tags
  are reported in :class:`EndpointStats`, with empty tags, never dropped silently.

The wire format: ``POST {endpoint_url}/chat/completions`` with ``model``, ``messages``
(a system message with the prompt, a user message with the batch), ``temperature`` 0 and
``response_format`` ``{"type": "json_object"}``; the answer's first choice's message
content must be ``{"<product_id>": ["tag", ...], ...}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from visearch.config import TagSettings
from visearch.errors import EndpointError, InvalidArgumentError
from visearch.progress import track

__all__ = ["EndpointClient", "EndpointItem", "EndpointStats", "TagCache", "cache_key", "BACKOFF_S"]

log = logging.getLogger(__name__)

#: first retry waits this long, each next one twice as long
BACKOFF_S = 0.5
#: no wait between retries is longer than this
MAX_BACKOFF_S = 30.0
#: 4xx statuses worth retrying (besides every 5xx): the server is busy or timed out, the request may be fine
RETRY_STATUSES = frozenset({408, 429})
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


@dataclass(frozen=True)
class EndpointItem:
    """One product as the endpoint sees it: its id and its OpenAI content parts (text, image_url)."""

    product_id: str
    parts: tuple[dict[str, Any], ...]


@dataclass
class EndpointStats:
    """What one run over the endpoint took and what went wrong; the CLI prints it."""

    products: int = 0
    cached: int = 0
    requests: int = 0
    retries: int = 0
    malformed_answers: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # product_id -> why it has no tags

    def to_dict(self) -> dict[str, Any]:
        return {
            "products": self.products, "cached": self.cached, "requests": self.requests, "retries": self.retries,
            "malformed_answers": self.malformed_answers, "failed": len(self.failed),
            "failed_examples": dict(list(self.failed.items())[:5]),
        }


def cache_key(model: str, prompt: str, parts: Sequence[dict[str, Any]]) -> str:
    """The cache key of one product's request: sha256 of the model, the prompt and its content."""
    blob = json.dumps([model, prompt, list(parts)], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class TagCache:
    """Generated tags by :func:`cache_key`, in one SQLite file (or memory when ``path`` is None).

    Used from one thread at a time (the caller's); the workers only talk HTTP.
    """

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise InvalidArgumentError(f"tag cache {path}: cannot create its folder ({e.strerror})") from None
        self.path = path
        try:
            self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS tags (key TEXT PRIMARY KEY, tags TEXT NOT NULL, at REAL)")
            self._db.commit()
        except sqlite3.Error as e:
            raise InvalidArgumentError(f"tag cache {path}: not a usable SQLite file ({e}); "
                                       "delete it or set VISEARCH_TAGS__CACHE_PATH") from None
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i:i + 500])
                marks = ",".join("?" * len(chunk))
                for key, tags in self._db.execute(f"SELECT key, tags FROM tags WHERE key IN ({marks})", chunk):
                    out[key] = json.loads(tags)
        return out

    def put_many(self, items: dict[str, list[str]]) -> None:
        if not items:
            return
        now = time.time()
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO tags (key, tags, at) VALUES (?, ?, ?)",
                                 [(k, json.dumps(v, ensure_ascii=False), now) for k, v in items.items()])
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM tags").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_answer(content: str, ids: Sequence[str]) -> tuple[dict[str, list[str]], str | None]:
    """The tags per product id in a model's answer, and what was wrong with it (None: nothing).

    Accepts a JSON object, also inside a ```json fence; a product's value must be a list of
    strings (a single string is taken as one tag). Ids not asked for are ignored.
    """
    m = _FENCE.match(content or "")
    text = m.group(1) if m else (content or "")
    try:
        data = json.loads(text)
    except ValueError:
        return {}, f"answer is not JSON: {_one_line(text, 80)!r}"
    if not isinstance(data, dict):
        return {}, f"answer is JSON {type(data).__name__}, not an object of product ids"
    out: dict[str, list[str]] = {}
    bad: list[str] = []
    for pid in ids:
        value = data.get(pid)
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(t, str) for t in value):
            out[pid] = [t for t in value if t.strip()]
        else:
            bad.append(pid)
    if bad:
        return out, f"answer lacks tags for {len(bad)} of {len(ids)} products (e.g. {bad[0]})"
    return out, None


class EndpointClient:
    """Send products to the endpoint in batches and bring back their raw tags.

    ``prompt`` is the system message; ``instruction`` heads the user message of every batch.
    """

    def __init__(self, settings: TagSettings, prompt: str, instruction: str, *,
                 backoff_s: float = BACKOFF_S, progress: bool = False, description: str = "tagging") -> None:
        if not settings.endpoint_url:
            raise InvalidArgumentError(
                "the llm and vlm tag generators need an endpoint: set VISEARCH_TAGS__ENDPOINT_URL "
                "(an OpenAI-compatible base URL, e.g. http://vllm:8000/v1)")
        self.settings = settings
        self.url = settings.endpoint_url.rstrip("/") + "/chat/completions"
        self.prompt = prompt
        self.instruction = instruction
        self.backoff_s = backoff_s
        self.progress = progress
        self.description = description
        self.stats = EndpointStats()
        self._stats_lock = threading.Lock()
        headers = {"Content-Type": "application/json"}
        if settings.endpoint_api_key:
            headers["Authorization"] = f"Bearer {settings.endpoint_api_key}"
        self._http = httpx.Client(timeout=settings.endpoint_timeout_s, headers=headers,
                                  limits=httpx.Limits(max_connections=settings.endpoint_concurrency))

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ one request

    def _count(self, **kw: int) -> None:
        with self._stats_lock:
            for k, v in kw.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST one chat-completions request, retrying what a retry can fix.

        Raises:
            EndpointError: unreachable or failing after every retry, or a 4xx other than 408/429.
        """
        tries = self.settings.endpoint_retries + 1
        last = ""
        for attempt in range(tries):
            if attempt:
                self._count(retries=1)
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            self._count(requests=1)
            try:
                r = self._http.post(self.url, json=body)
            except httpx.TimeoutException:
                last = f"no answer within {self.settings.endpoint_timeout_s:g} s"
                continue
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {_one_line(str(e), 120) or 'connection failed'}"
                continue
            if r.status_code in RETRY_STATUSES or r.status_code >= 500:
                last = f"HTTP {r.status_code}"
                continue
            if r.status_code >= 400:
                raise EndpointError(f"tag endpoint {self.url} refused the request: HTTP {r.status_code} "
                                    f"{_one_line(r.text, 160)} (not retried)")
            try:
                data = r.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                # a 200 that is not JSON at all: the server is not OpenAI-compatible; treat as a bad answer
                return {"choices": [{"message": {"content": r.text}}]}
            return data
        raise EndpointError(f"tag endpoint {self.url} failed after {tries} tries ({last}); "
                            "is the server up? (VISEARCH_TAGS__ENDPOINT_URL)")

    def _body(self, batch: Sequence[EndpointItem]) -> dict[str, Any]:
        ids = [it.product_id for it in batch]
        head = {"type": "text", "text": f"{self.instruction}\nProduct ids: {json.dumps(ids, ensure_ascii=False)}"}
        parts: list[dict[str, Any]] = [head, *(p for it in batch for p in it.parts)]
        content: str | list[dict[str, Any]]
        if all(p.get("type") == "text" for p in parts):  # text-only models take a plain string most widely
            content = "\n".join(p["text"] for p in parts)
        else:
            content = parts
        return {
            "model": self.settings.endpoint_model,
            "messages": [{"role": "system", "content": self.prompt}, {"role": "user", "content": content}],
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }

    def _ask(self, batch: Sequence[EndpointItem]) -> tuple[dict[str, list[str]], str | None]:
        data = self.post(self._body(batch))
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return {}, f"answer has no choices[0].message.content: {_one_line(json.dumps(data)[:120])}"
        if isinstance(content, list):  # some servers answer in content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return parse_answer(str(content), [it.product_id for it in batch])

    def _run_batch(self, batch: Sequence[EndpointItem]) -> tuple[dict[str, list[str]], dict[str, str]]:
        """One batch: the request, and once more for the products a malformed answer left out."""
        got, problem = self._ask(batch)
        failed: dict[str, str] = {}
        if problem is not None:
            self._count(malformed_answers=1)
            log.warning("tag endpoint %s: %s; asking again for the rest of the batch", self.url, problem)
            missing = [it for it in batch if it.product_id not in got]
            more, problem2 = self._ask(missing)
            got.update(more)
            if problem2 is not None:
                self._count(malformed_answers=1)
                failed = {it.product_id: problem2 for it in missing if it.product_id not in got}
        return got, failed

    # ------------------------------------------------------------------ a catalog

    def tag(self, items: Sequence[EndpointItem], cache: TagCache) -> list[list[str]]:
        """Raw tags of every item, in order: cached ones from the cache, the rest from the endpoint.

        Raises:
            EndpointError: the endpoint is unreachable or refuses (the first such error stops the run).
        """
        self.stats = EndpointStats(products=len(items))
        keys = [cache_key(self.settings.endpoint_model, self.prompt, it.parts) for it in items]
        known = cache.get_many(keys)
        self.stats.cached = sum(k in known for k in keys)
        out: list[list[str] | None] = [known.get(k) for k in keys]
        todo = [i for i, tags in enumerate(out) if tags is None]
        size = self.settings.endpoint_batch
        batches = [todo[i:i + size] for i in range(0, len(todo), size)]
        if batches:
            for batch, (got, failed) in zip(batches, self._each(batches, items), strict=True):
                fresh = {}
                for i in batch:
                    pid = items[i].product_id
                    if pid in got:
                        out[i] = got[pid]
                        fresh[keys[i]] = got[pid]
                    else:
                        out[i] = []
                        self.stats.failed[pid] = failed.get(pid, "no answer for this product")
                cache.put_many(fresh)
        if self.stats.failed:
            log.warning("tag endpoint %s: %d products got no tags (malformed answers twice), e.g. %s",
                        self.url, len(self.stats.failed), next(iter(self.stats.failed.items())))
        return [tags or [] for tags in out]

    def _each(self, batches: list[list[int]], items: Sequence[EndpointItem]
              ) -> Iterator[tuple[dict[str, list[str]], dict[str, str]]]:
        """Run the batches ``endpoint_concurrency`` at a time; answers in batch order, a bar as they land."""
        workers = min(self.settings.endpoint_concurrency, len(batches))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tag-endpoint")
        futures: list[Future] = [pool.submit(self._run_batch, [items[i] for i in b]) for b in batches]
        try:
            done_order = self._as_done(futures)
            for _ in track(done_order, total=len(futures), description=self.description, enabled=self.progress):
                pass
            for f in futures:
                yield f.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _as_done(futures: list[Future]) -> Iterator[Future]:
        """Futures as they finish; the first error cancels the rest and is raised at once."""
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                if f.exception() is not None:
                    for p in pending:
                        p.cancel()
                    raise f.exception()  # type: ignore[misc]
                yield f
