"""The service under load: a killed replica is replaced; a moved alias switches versions with no failed request."""

from __future__ import annotations

import json
import shutil
import threading
import time

import httpx


class Load:
    """Photos sent one after another from a thread; every status and answer kept."""

    def __init__(self, url: str, photo: bytes) -> None:
        self.url, self.photo = url, photo
        self.results: list[tuple[float, int, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60, headers={"X-User-Id": "load"}) as c:
            while not self._stop.is_set():
                try:
                    r = c.post("/v1/photo", files={"image": ("p.jpg", self.photo, "image/jpeg")}, data={"top_k": "3"})
                    self.results.append((time.monotonic(), r.status_code, r.json() if r.status_code == 200 else {}))
                except httpx.HTTPError:
                    self.results.append((time.monotonic(), 0, {}))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def _photo(service) -> bytes:
    return sorted((service.catalog_dir / "scenes" / "images" / "test").glob("*.jpg"))[0].read_bytes()


def test_a_killed_replica_is_replaced(service):
    import ray

    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if "#Detector#" in a["name"]]
    assert replicas, "the detector deployment has a replica actor"
    with Load(service.url, _photo(service)) as load:
        time.sleep(2)
        killed_at = time.monotonic()
        ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until five answers in a row succeed after the kill
            after = [s for t, s, _ in load.results if t > killed_at]
            if len(after) >= 5 and all(s == 200 for s in after[-5:]):
                break
            time.sleep(0.5)
    after = [s for t, s, _ in load.results if t > killed_at]
    assert len(after) >= 5 and all(s == 200 for s in after[-5:]), f"statuses after the kill: {after}"
    new = [a for a in ray.util.list_named_actors(all_namespaces=True) if "#Detector#" in a["name"]]
    assert new and new[0]["name"] != replicas[0]["name"], "Serve started a new replica"


def test_moving_an_alias_switches_versions_with_no_failed_request(service, tmp_path):
    from visearch.config import Settings
    from visearch.registry import ModelStore, pin_model

    settings = Settings(data_dir=service.data_dir)
    store = ModelStore(settings)
    before = {n: pin_model(f"models:/{n}@champion", settings) for n in ("visearch-embedder", "visearch-detector")}
    try:
        _promote_copies_under_load(service, store, settings, before, tmp_path)
    finally:  # the session's other tests (tags, refinement: tied to the first embedder) get the champions back
        for name, pinned in before.items():
            store.client.set_registered_model_alias(name, "champion", pinned.version)
        _wait_for_models(service, {"embedder": before["visearch-embedder"].label})


def _wait_for_models(service, want: dict[str, str], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = httpx.post(service.url + "/v1/photo", files={"image": ("p.jpg", _photo(service), "image/jpeg")}, timeout=60)
        if r.status_code == 200 and all(r.json()["models"][k] == v for k, v in want.items()):
            return
        time.sleep(0.5)
    raise AssertionError(f"the service did not go back to {want}")


def _promote_copies_under_load(service, store, settings, before, tmp_path) -> None:
    from visearch.registry import resolve_model

    with Load(service.url, _photo(service)) as load:
        time.sleep(2)
        new_versions = {}
        with store.run("promotion-test", "copy of the champions", {}) as run:
            for name, pinned in before.items():
                folder = tmp_path / name
                shutil.copytree(resolve_model(pinned.ref, settings), folder)
                card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
                new_versions[name] = store.register(run.info.run_id, folder, name, card)
        moved_at = time.monotonic()
        for name, version in new_versions.items():
            store.client.set_registered_model_alias(name, "champion", version)
        want = {"embedder": f"visearch-embedder/{new_versions['visearch-embedder']}",
                "detector": f"visearch-detector/{new_versions['visearch-detector']}"}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            recent = [m for t, s, m in load.results[-3:] if s == 200]
            if recent and all(m["models"]["embedder"] == want["embedder"] and m["models"]["detector"] == want["detector"]
                              for m in recent):
                break
            time.sleep(0.5)
        switched = time.monotonic() - moved_at
    statuses = [s for _, s, _ in load.results]
    assert statuses and all(s == 200 for s in statuses), f"failed requests during promotion: {statuses}"
    last = load.results[-1][2]["models"]
    assert last["embedder"] == want["embedder"] and last["detector"] == want["detector"], (last, want)
    assert switched < 60, f"the new versions answered after {switched:.0f}s"
