"""Tag generators: the offline extractor, and the LLM / VLM taggers against a real HTTP server.

No model can run here, so the endpoint is a local ``ThreadingHTTPServer`` on 127.0.0.1 that speaks
the OpenAI chat-completions protocol and answers deterministically from the request: a product's
tags are the words of its title (LLM), or a summary of the photo it was sent (VLM). Each test can
script the server's next answers (a 500, a slow answer, a 400, malformed JSON, missing ids) to
check the client's retries, cache, batching and error reports.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from visearch.config import Settings, TagSettings
from visearch.errors import EndpointError, InvalidArgumentError
from visearch.tags import ExtractorTagger, LLMTagger, ProductCard, TagGenerator, VLMTagger, make_generator
from visearch.tags.generate import LLM_PROMPT, VLM_PROMPT
from visearch.tags.openai_compat import EndpointItem, TagCache, cache_key, parse_answer

_IDS = re.compile(r"Product ids: (\[.*?\])")


class FakeOpenAI:
    """A chat-completions server; ``script`` holds the next answers' kinds (default "ok")."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[str] = []
        self.slow_s = 1.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_s = 0.0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    kind = fake.script.pop(0) if fake.script else "ok"
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    fake.answer(self, kind, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @staticmethod
    def tags_for(body: dict) -> dict[str, list[str]]:
        """The deterministic answer: title words per product (text), or the photo's size (vision)."""
        content = body["messages"][1]["content"]
        if isinstance(content, str):
            out = {}
            for line in content.splitlines():
                if line.startswith("{"):
                    item = json.loads(line)
                    out[item["id"]] = item["title"].lower().split()
            return out
        out, pid = {}, None
        for part in content[1:]:
            if part["type"] == "text":
                pid = part["text"].split(": ", 1)[1]
            else:
                data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                with Image.open(io.BytesIO(data)) as img:
                    out[pid] = ["photo", f"{img.width}x{img.height}", img.format.lower()]
        return out

    def answer(self, h: BaseHTTPRequestHandler, kind: str, body: dict) -> None:
        text = body["messages"][1]["content"]
        text = text if isinstance(text, str) else text[0]["text"]
        ids = json.loads(_IDS.search(text).group(1))
        if kind == "500":
            return self._send(h, 500, {"error": "boom"})
        if kind == "400":
            return self._send(h, 400, {"error": {"message": "bad model"}})
        if kind == "slow":
            time.sleep(self.slow_s)
        time.sleep(self.delay_s)
        tags = self.tags_for(body)
        assert sorted(tags) == sorted(ids)
        if kind == "garbage":
            content = "Sure! Here are the tags: mug, red"
        elif kind == "missing":
            content = json.dumps({k: v for k, v in tags.items() if k != ids[0]})
        else:
            content = "```json\n" + json.dumps(tags, ensure_ascii=False) + "\n```" if kind == "fenced" \
                else json.dumps(tags, ensure_ascii=False)
        self._send(h, 200, {"id": "x", "object": "chat.completion", "model": body["model"],
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "finish_reason": "stop"}]})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    s = FakeOpenAI()
    yield s
    s.close()


def _settings(url: str, tmp_path: Path, **kw) -> TagSettings:
    base = dict(endpoint_url=url, endpoint_model="test-model", endpoint_batch=2, endpoint_concurrency=2,
                endpoint_retries=2, endpoint_timeout_s=5.0, cache_path=tmp_path / "cache.db")
    return TagSettings(**{**base, **kw})


def _cards(n: int) -> list[ProductCard]:
    words = ["кружка красная", "mug blue", "Чехол для телефона", "vase серый", "худи cotton", "chair", "лампа"]
    return [ProductCard(f"p{i}", f"{words[i % len(words)]} {i}", f"описание {i}") for i in range(n)]


def _llm(settings: TagSettings) -> LLMTagger:
    return LLMTagger(settings, backoff_s=0.01)


def _expected(cards: list[ProductCard]) -> list[list[str]]:
    return [c.title.lower().split() for c in cards]


def test_llm_tags_come_back_per_product_in_batches(server, tmp_path):
    cards = _cards(5)
    gen = _llm(_settings(server.url, tmp_path, endpoint_api_key="sekret"))
    assert isinstance(gen, TagGenerator) and gen.name == "llm"
    assert gen.generate(cards) == _expected(cards)
    assert len(server.requests) == math.ceil(5 / 2)
    # requests run concurrently: take the one carrying the first batch, whatever order they arrived in
    req = next(r for r in server.requests if '"p0"' in r["body"]["messages"][1]["content"])
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sekret"
    body = req["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": LLM_PROMPT}
    assert "кружка красная" in body["messages"][1]["content"]  # Cyrillic sent as it is
    assert gen.stats.requests == 3 and gen.stats.cached == 0 and not gen.stats.failed


def test_batching_splits_into_ceil_n_over_batch(server, tmp_path):
    for n, batch in ((7, 3), (1, 8), (8, 8)):
        server.requests.clear()
        _llm(_settings(server.url, tmp_path, endpoint_batch=batch, cache_path=None)).generate(_cards(n))
        assert len(server.requests) == math.ceil(n / batch)
        sizes = sorted(len(_IDS.search(r["body"]["messages"][1]["content"]).group(1).split(",")) for r in server.requests)
        assert sum(sizes) == n and max(sizes) <= batch


def test_second_run_is_served_from_the_cache(server, tmp_path):
    cards = _cards(6)
    settings = _settings(server.url, tmp_path)
    first = _llm(settings).generate(cards)
    sent = len(server.requests)
    gen = _llm(settings)
    assert gen.generate(cards) == first
    assert len(server.requests) == sent  # nothing sent
    assert gen.stats.cached == 6 and gen.stats.requests == 0
    # a changed prompt is a different question: asked again
    _llm(_settings(server.url, tmp_path, prompt="Tag these.")).generate(cards[:2])
    assert len(server.requests) == sent + 1
    assert server.requests[-1]["body"]["messages"][0]["content"] == "Tag these."
    # the key is the model, the prompt and the product's content
    item = EndpointItem("p1", ({"type": "text", "text": "a"},))
    assert cache_key("m", "p", item.parts) != cache_key("m2", "p", item.parts) != cache_key("m", "p2", item.parts)
    assert len(TagCache(settings.cache_path)) == 6 + 2


def test_retries_after_a_500(server, tmp_path):
    server.script = ["500", "500"]
    cards = _cards(2)
    gen = _llm(_settings(server.url, tmp_path, endpoint_batch=2))
    assert gen.generate(cards) == _expected(cards)
    assert len(server.requests) == 3 and gen.stats.retries == 2


def test_retries_after_a_timeout(server, tmp_path):
    server.script = ["slow"]
    server.slow_s = 1.0
    cards = _cards(2)
    gen = _llm(_settings(server.url, tmp_path, endpoint_timeout_s=0.3))
    t0 = time.perf_counter()
    assert gen.generate(cards) == _expected(cards)
    assert len(server.requests) == 2 and gen.stats.retries == 1
    assert time.perf_counter() - t0 < 1.0  # it did not wait for the slow answer


def test_a_400_is_not_retried(server, tmp_path):
    server.script = ["400"]
    gen = _llm(_settings(server.url, tmp_path, endpoint_batch=8))
    with pytest.raises(EndpointError) as e:
        gen.generate(_cards(3))
    assert len(server.requests) == 1
    msg = str(e.value)
    assert "\n" not in msg and f"{server.url}/chat/completions" in msg and "HTTP 400" in msg


def test_retries_give_up_with_a_clear_error(server, tmp_path):
    server.script = ["500"] * 10
    with pytest.raises(EndpointError, match=r"failed after 3 tries \(HTTP 500\)"):
        _llm(_settings(server.url, tmp_path, endpoint_batch=8)).generate(_cards(2))
    assert len(server.requests) == 3


def test_a_dead_port_gives_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(EndpointError) as e:
        _llm(_settings(url, tmp_path, endpoint_retries=1)).generate(_cards(3))
    msg = str(e.value)
    assert "\n" not in msg and f"{url}/chat/completions" in msg and "failed after 2 tries" in msg
    assert "VISEARCH_TAGS__ENDPOINT_URL" in msg


def test_malformed_output_is_asked_again_once(server, tmp_path):
    cards = _cards(3)
    server.script = ["garbage"]
    gen = _llm(_settings(server.url, tmp_path, endpoint_batch=8))
    assert gen.generate(cards) == _expected(cards)
    assert gen.stats.malformed_answers == 1 and not gen.stats.failed
    # an answer missing one id: only that product is asked for again
    server.requests.clear()
    server.script = ["missing"]
    gen = _llm(_settings(server.url, tmp_path, endpoint_batch=8, cache_path=None))
    assert gen.generate(cards) == _expected(cards)
    assert len(server.requests) == 2
    assert json.loads(_IDS.search(server.requests[1]["body"]["messages"][1]["content"]).group(1)) == ["p0"]


def test_malformed_output_twice_is_reported_not_fatal(server, tmp_path, caplog):
    cards = _cards(4)
    server.script = ["ok", "garbage", "garbage"]  # batch 1 fine; batch 2 malformed twice
    settings = _settings(server.url, tmp_path, endpoint_concurrency=1)
    gen = _llm(settings)
    got = gen.generate(cards)
    assert got[:2] == _expected(cards[:2]) and got[2:] == [[], []]
    assert gen.stats.malformed_answers == 2
    assert set(gen.stats.failed) == {"p2", "p3"} and "not JSON" in gen.stats.failed["p2"]
    assert gen.stats.to_dict()["failed"] == 2
    assert any("got no tags" in r.message for r in caplog.records)
    # failures are not cached: the next run asks for them again
    server.requests.clear()
    assert _llm(settings).generate(cards) == _expected(cards)
    assert len(server.requests) == 1


def test_parse_answer_accepts_fences_and_lone_strings():
    assert parse_answer('```json\n{"a": ["x"], "b": "y"}\n```', ["a", "b"]) == ({"a": ["x"], "b": ["y"]}, None)
    got, problem = parse_answer('["x"]', ["a"])
    assert got == {} and "not an object" in problem
    got, problem = parse_answer('{"a": [1, 2]}', ["a"])
    assert got == {} and "lacks tags for 1 of 1" in problem


def test_concurrency_is_bounded(server, tmp_path):
    server.delay_s = 0.15
    _llm(_settings(server.url, tmp_path, endpoint_batch=1, endpoint_concurrency=2, cache_path=None)).generate(_cards(6))
    assert len(server.requests) == 6 and server.max_in_flight == 2


def test_vlm_sends_the_first_photo_as_a_data_uri(server, tmp_path):
    photos = []
    for i, (fmt, size) in enumerate((("JPEG", (40, 30)), ("PNG", (20, 20)), ("JPEG", (2000, 1000)))):
        path = tmp_path / f"p{i}_0.{fmt.lower()}"
        Image.new("RGB", size, (200, 30, 30)).save(path, format=fmt)
        photos.append(path)
    cards = [ProductCard(f"p{i}", "", "", {}, (p, tmp_path / "unused.jpg")) for i, p in enumerate(photos)]
    cards.append(ProductCard("p9", "no photo"))
    gen = VLMTagger(_settings(server.url, tmp_path, endpoint_batch=2), backoff_s=0.01)
    got = gen.generate(cards)
    assert got == [["photo", "40x30", "jpeg"], ["photo", "20x20", "jpeg"], ["photo", "1024x512", "jpeg"], []]
    assert gen.stats.failed == {"p9": "no photo to send"}
    assert len(server.requests) == 2
    body = next(r["body"] for r in server.requests if "product id: p0" in json.dumps(r["body"]["messages"][1]["content"]))
    assert body["messages"][0]["content"] == VLM_PROMPT
    parts = body["messages"][1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 2
    assert all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images)
    # the JPEG goes byte for byte
    assert base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1]) == photos[0].read_bytes()
    # one product: its id, then its photo
    assert [p["type"] for p in parts] == ["text", "text", "image_url", "text", "image_url"]
    assert parts[1]["text"] == "product id: p0"


def test_make_generator():
    assert isinstance(make_generator(Settings()), ExtractorTagger)
    assert isinstance(make_generator(TagSettings(generator="llm", endpoint_url="http://x/v1")), LLMTagger)
    assert isinstance(make_generator(TagSettings(endpoint_url="http://x/v1"), generator="vlm"), VLMTagger)
    with pytest.raises(InvalidArgumentError, match="VISEARCH_TAGS__ENDPOINT_URL"):
        make_generator(TagSettings(generator="llm"))
    with pytest.raises(InvalidArgumentError, match="unknown tag generator"):
        make_generator(TagSettings(), generator="oracle")


def test_extractor_gives_attributes_and_ngrams():
    card = ProductCard("p1", "🔥 Кружка красная, ХИТ!", "Материал: керамика. Great mug.",
                       {"category": "phone_case", "colour": "red"})
    raw = ExtractorTagger().generate([card])[0]
    assert raw[:2] == ["phone case", "red"]
    assert "Кружка красная" in raw and "Материал" in raw and "керамика" in raw and "Great mug" in raw
    assert "Материал керамика" not in raw  # no n-gram across a clause break
    assert ExtractorTagger().generate([]) == []


def test_cli_on_a_tiny_synth_catalog(tiny_synth, tmp_path, cli):
    """End to end: extractor + cleaning on the tiny WB-Synth set; tags, vocabulary and report written."""
    data = Path(shutil.copytree(tiny_synth, tmp_path / "tiny"))
    r = cli(tmp_path, "tags", "generate", "--data", str(data), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["recovery"]["all"] >= 0.9
    table = pq.read_table(data / "tags.parquet")
    assert table.column_names == ["product_id", "tag", "facet"]
    products = pq.read_table(data / "products.parquet").to_pylist()
    assert set(table.column("product_id").to_pylist()) == {p["product_id"] for p in products}
    vocab_text = (data / "tags-vocabulary.json").read_text(encoding="utf-8")
    assert re.search("[а-я]", vocab_text) and "\\u04" not in vocab_text  # Cyrillic aliases, readable
    saved = json.loads((data / "tags-cleaning.json").read_text(encoding="utf-8"))
    assert saved["cleaning"]["steps"].keys() == {"normalise", "stopwords", "typos", "aliases", "merge", "rare"}
    # titles and descriptions only, with the vocabulary saved above, to another file; readable summary
    r = cli(tmp_path, "tags", "generate", "--data", str(data), "--no-attributes", "--out", str(tmp_path / "t.parquet"),
            "--vocabulary", str(data / "tags-vocabulary.json"))
    assert r.returncode == 0, r.stderr
    assert "attribute values found" in r.stdout and (tmp_path / "t-cleaning.json").is_file()
    assert not (tmp_path / "t-vocabulary.json").exists()


def test_cli_llm_against_the_local_server(tiny_synth, tmp_path, cli, server):
    data = Path(shutil.copytree(tiny_synth, tmp_path / "tiny"))
    env = {"VISEARCH_TAGS__ENDPOINT_URL": server.url, "VISEARCH_TAGS__ENDPOINT_BATCH": "16"}
    r = cli(tmp_path, "tags", "generate", "--data", str(data), "--generator", "llm", "--json", env=env)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["generator"]["endpoint"]["requests"] == 2 and len(server.requests) == 2
    assert result["cleaning"]["products"] == 30
    # served from the cache the second time
    r = cli(tmp_path, "tags", "generate", "--data", str(data), "--generator", "llm", "--json", env=env)
    assert json.loads(r.stdout)["generator"]["endpoint"]["cached"] == 30 and len(server.requests) == 2
    # a dead endpoint: one line, exit 1
    r = cli(tmp_path, "tags", "generate", "--data", str(data), "--generator", "llm",
            env={**env, "VISEARCH_TAGS__ENDPOINT_URL": "http://127.0.0.1:9/v1", "VISEARCH_TAGS__ENDPOINT_RETRIES": "0",
                 "VISEARCH_TAGS__CACHE_PATH": str(tmp_path / "other.db")})
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("visearch: error:")]
    assert len(errors) == 1 and "http://127.0.0.1:9/v1/chat/completions" in errors[0], r.stderr
