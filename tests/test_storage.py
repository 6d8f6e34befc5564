"""The index store against a local folder and a real Cloud Storage emulator, and the Pub/Sub rig."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.cloud import storage

from function.storage.base import IndexStore
from function.storage.errors import GenerationMismatch, StoreError
from function.storage.gcs import GcsStore
from function.storage.local import LocalStore
from function.storage.uri import open_store, parse_gs_uri
from tests.support.gcs import GcsEmulator, find_binary, gcs, gcs_env
from tests.support.pubsub import PubSubEmulator, pubsub

__all__ = ["gcs", "gcs_env", "pubsub"]  # fixtures, imported to be found without -p

INDEX = json.dumps({"version": 1, "images": {"a": ["sha256:" + "0" * 64]}}).encode()
OTHER = json.dumps({"version": 1, "images": {"b": ["sha256:" + "1" * 64]}}).encode()

emulators = pytest.mark.emulators


def race(stores: list[IndexStore], generation: int | None) -> tuple[list[int], list[bytes]]:
    """Every store writes its own bytes at once, all from the same generation; (generations, winners)."""
    payloads = [json.dumps({"writer": i, "pad": "x" * 1000}).encode() for i in range(len(stores))]
    barrier = threading.Barrier(len(stores))
    won: list[tuple[int, bytes]] = []
    lost: list[BaseException] = []

    def write(store: IndexStore, payload: bytes) -> None:
        barrier.wait()
        try:
            won.append((store.write(payload, if_generation=generation), payload))
        except GenerationMismatch as error:
            lost.append(error)

    threads = [threading.Thread(target=write, args=pair) for pair in zip(stores, payloads, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) + len(lost) == len(stores), "a writer failed with something other than a mismatch"
    return [g for g, _ in won], [p for _, p in won]


# --- URIs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "  ",
        "gs://",
        "gs://bucket",
        "gs://bucket/",
        "gs:///object",
        "gs:/bucket/object",
        "gs:bucket/object",
        "gs://Bucket/object",
        "gs://b/object",
        "gs://bucket//object",
        "gs://bucket/folder/",
        "gs://bucket/a\nb",
        "s3://bucket/object",
        "https://storage.googleapis.com/bucket/object",
    ],
)
def test_bad_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="index URI"):
        open_store(uri)


def test_uris_choose_the_store(tmp_path: Path) -> None:
    assert parse_gs_uri("gs://my-bucket/indexes/index.json.gz") == ("my-bucket", "indexes/index.json.gz")
    gcs_store = open_store("gs://my-bucket/indexes/index.json.gz")
    assert isinstance(gcs_store, GcsStore)
    assert gcs_store.uri == "gs://my-bucket/indexes/index.json.gz"
    local = open_store(str(tmp_path / "index.json"))
    assert isinstance(local, LocalStore)
    assert local.uri == str(tmp_path / "index.json")


# --- LocalStore -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["index.json", "index.json.gz"])
def test_local_round_trip(tmp_path: Path, name: str) -> None:
    store = open_store(str(tmp_path / name))
    assert store.read() is None
    assert store.generation() is None
    generation = store.write(INDEX, if_generation=None)
    stored = store.read()
    assert stored is not None
    assert stored.data == INDEX
    assert stored.generation == generation == store.generation()
    raw = (tmp_path / name).read_bytes()
    assert raw.startswith(b"\x1f\x8b") == name.endswith(".gz")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_local_preconditions(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "index.json.gz"))
    first = store.write(INDEX, if_generation=None)
    with pytest.raises(GenerationMismatch, match=r"index\.json\.gz"):
        store.write(OTHER, if_generation=None)
    # Back to back, well within one tick of a coarse file system clock: the generation still moves.
    second = store.write(OTHER, if_generation=first)
    third = store.write(INDEX, if_generation=second)
    assert len({first, second, third}) == 3
    with pytest.raises(GenerationMismatch):
        store.write(OTHER, if_generation=second)
    stored = store.read()
    assert stored is not None
    assert (stored.data, stored.generation) == (INDEX, third)


def test_local_writers_race(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    base = LocalStore(path).write(INDEX, if_generation=None)
    for _ in range(20):
        generation = LocalStore(path).generation()
        generations, winners = race([LocalStore(path) for _ in range(4)], generation)
        assert len(winners) == 1
        assert path.read_bytes() == winners[0]
        assert LocalStore(path).generation() == generations[0] != base


def test_local_reads_plain_json_and_refuses_broken_gzip(tmp_path: Path) -> None:
    (tmp_path / "plain.json.gz").write_bytes(INDEX)
    stored = LocalStore(tmp_path / "plain.json.gz").read()
    assert stored is not None
    assert stored.data == INDEX
    (tmp_path / "broken.json").write_bytes(gzip.compress(INDEX)[:20])
    with pytest.raises(StoreError, match="not valid gzip"):
        LocalStore(tmp_path / "broken.json").read()


def test_local_write_into_a_missing_folder_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        LocalStore(tmp_path / "missing" / "index.json").write(INDEX, if_generation=None)


# --- GcsStore against fake-gcs-server -------------------------------------------------------------


@emulators
def test_gcs_round_trip_stores_plain_gzip(gcs_env: str) -> None:
    store = open_store(f"gs://{gcs_env}/indexes/index.json.gz")
    assert store.read() is None
    assert store.generation() is None
    generation = store.write(INDEX, if_generation=None)
    assert store.generation() == generation
    stored = store.read()
    assert stored is not None
    assert (stored.data, stored.generation) == (INDEX, generation)

    blob = storage.Client(project=None).bucket(gcs_env).get_blob("indexes/index.json.gz")
    assert blob.content_type == "application/gzip"
    assert blob.content_encoding is None
    assert blob.download_as_bytes(raw_download=True).startswith(b"\x1f\x8b")


@emulators
def test_gcs_reads_a_plain_json_object(gcs_env: str) -> None:
    blob = storage.Client(project=None).bucket(gcs_env).blob("index.json")
    blob.upload_from_string(INDEX, content_type="application/json")
    stored = open_store(f"gs://{gcs_env}/index.json").read()
    assert stored is not None
    assert (stored.data, stored.generation) == (INDEX, blob.generation)


@emulators
def test_gcs_preconditions(gcs_env: str) -> None:
    store = open_store(f"gs://{gcs_env}/index.json.gz")
    first = store.write(INDEX, if_generation=None)
    with pytest.raises(GenerationMismatch, match=f"gs://{gcs_env}/index.json.gz"):
        store.write(OTHER, if_generation=None)
    second = store.write(OTHER, if_generation=first)
    assert second != first
    assert store.generation() == second
    with pytest.raises(GenerationMismatch):
        store.write(INDEX, if_generation=first)
    stored = store.read()
    assert stored is not None
    assert (stored.data, stored.generation) == (OTHER, second)


@emulators
def test_gcs_writers_race(gcs_env: str) -> None:
    uri = f"gs://{gcs_env}/index.json.gz"
    open_store(uri).write(INDEX, if_generation=None)
    for _ in range(10):
        # One store, and so one client, per writer: as two function instances would have.
        generation = open_store(uri).generation()
        generations, winners = race([open_store(uri) for _ in range(3)], generation)
        assert len(winners) == 1
        stored = open_store(uri).read()
        assert stored is not None
        assert (stored.data, stored.generation) == (winners[0], generations[0])


@emulators
def test_gcs_emulator_host_without_scheme(gcs: GcsEmulator, gcs_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.host)
    store = open_store(f"gs://{gcs_env}/index.json.gz")
    store.write(INDEX, if_generation=None)
    assert store.read() is not None


@emulators
def test_gcs_write_to_a_missing_bucket_is_a_store_error(gcs_env: str) -> None:
    with pytest.raises(StoreError, match="does not exist") as caught:
        open_store(f"gs://{gcs_env}-missing/index.json.gz").write(INDEX, if_generation=None)
    assert not isinstance(caught.value, GenerationMismatch)


@emulators
def test_gcs_stopped_emulator_is_a_store_error_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    if find_binary() is None:
        pytest.skip("fake-gcs-server not found")
    with GcsEmulator() as emulator:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
        bucket = emulator.new_bucket()
        store = open_store(f"gs://{bucket}/index.json.gz", timeout=1.0, retry_timeout=1.5)
        store.write(INDEX, if_generation=None)
    for operation in (store.read, store.generation, lambda: store.write(OTHER, if_generation=None)):
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"gs://{bucket}/index.json.gz") as caught:
            operation()
        assert not isinstance(caught.value, GenerationMismatch)
        assert time.monotonic() - started < 10


@emulators
def test_gcs_silent_server_is_a_store_error_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:
        # Connections complete in the kernel's backlog and are never answered.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{silent.getsockname()[1]}")
        store = open_store("gs://bucket/index.json.gz", timeout=0.5, retry_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(StoreError, match="unreachable or failing"):
            store.read()
        assert time.monotonic() - started < 10


class LossyProxy:
    """Forwards to the emulator on loopback; swallows the answer to the next upload when told to."""

    def __init__(self, upstream: str) -> None:
        self.drop_next_upload = True
        self.dropped: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                connection = http.client.HTTPConnection(upstream, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                connection.close()
                if self.path.startswith("/upload/") and proxy.drop_next_upload:
                    # The upload has landed upstream; the client sees its connection drop.
                    proxy.drop_next_upload = False
                    proxy.dropped.append(self.path)
                    self.close_connection = True
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("connection", "content-length", "transfer-encoding", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@emulators
def test_gcs_write_whose_answer_was_lost_is_recognised(
    gcs: GcsEmulator, gcs_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = LossyProxy(gcs.host)
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        store = open_store(f"gs://{gcs_env}/index.json.gz", retry_timeout=20)
        # The first upload lands, its answer is lost, the retry meets 412: the data shows it was ours.
        generation = store.write(INDEX, if_generation=None)
        assert proxy.dropped, "the proxy dropped nothing: the test proves nothing"
        assert store.generation() == generation
        # Behind a lost answer, another writer's bytes still make a mismatch.
        proxy.drop_next_upload = True
        with pytest.raises(GenerationMismatch):
            open_store(f"gs://{gcs_env}/index.json.gz", retry_timeout=20).write(OTHER, if_generation=None)
        assert len(proxy.dropped) == 2
    finally:
        proxy.close()


# --- the Pub/Sub rig ------------------------------------------------------------------------------


class PushReceiver:
    """An HTTP endpoint on loopback that records every push and answers with scripted status codes."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.pushes: list[tuple[float, dict[str, str], dict[str, Any]]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.arrived:
                    receiver.pushes.append((time.monotonic(), dict(self.headers), body))
                    index = len(receiver.pushes) - 1
                    receiver.arrived.notify_all()
                status = receiver.answers[min(index, len(receiver.answers) - 1)]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/push"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.pushes) >= count, timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[list[int]], PushReceiver]]:
    receivers: list[PushReceiver] = []

    def make(answers: list[int]) -> PushReceiver:
        receivers.append(PushReceiver(answers))
        return receivers[-1]

    yield make
    for receiver in receivers:
        receiver.close()


@emulators
def test_pubsub_pushes_the_plain_push_body(
    pubsub: PubSubEmulator, receiver_factory: Callable[[list[int]], PushReceiver]
) -> None:
    receiver = receiver_factory([204])
    topic = pubsub.create_topic()
    subscription = pubsub.create_push_subscription(topic, receiver.url)
    try:
        payload = b'{"action": "INSERT", "digest": "gcr.io/p/i@sha256:' + b"0" * 64 + b'"}'
        message_id = pubsub.publish(topic, payload, origin="test")
        assert receiver.wait_for(1, timeout=30)
        _, headers, body = receiver.pushes[0]
        assert headers["Content-Type"] == "application/json"
        assert body["subscription"] == subscription
        message = body["message"]
        assert base64.b64decode(message["data"]) == payload
        assert message["attributes"] == {"origin": "test"}
        assert message["messageId"] == message["message_id"] == message_id
        assert message["publishTime"] == message["publish_time"]
        assert not receiver.wait_for(2, timeout=2), "a 204 must acknowledge"
    finally:
        pubsub.delete_subscription(subscription)


@emulators
def test_pubsub_redelivers_after_an_error(
    pubsub: PubSubEmulator, receiver_factory: Callable[[list[int]], PushReceiver]
) -> None:
    receiver = receiver_factory([500, 503, 200])
    topic = pubsub.create_topic()
    subscription = pubsub.create_push_subscription(topic, receiver.url)
    try:
        message_id = pubsub.publish(topic, b"{}")
        assert receiver.wait_for(3, timeout=30)
        assert {body["message"]["messageId"] for _, _, body in receiver.pushes} == {message_id}
        gaps = [b[0] - a[0] for a, b in zip(receiver.pushes, receiver.pushes[1:], strict=False)]
        assert all(gap < 5 for gap in gaps), gaps
        assert not receiver.wait_for(4, timeout=2.5), "a 200 must acknowledge"
    finally:
        pubsub.delete_subscription(subscription)
