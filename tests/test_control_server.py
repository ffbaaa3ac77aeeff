"""The control socket: real Unix sockets against a real asyncio ControlServer, through the real Client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import pytest

from automl.control import protocol
from automl.control.client import Client, DaemonNotRunning, RemoteError
from automl.control.server import ControlServer, DaemonAlreadyRunning
from automl.errors import UserError
from automl.states import EventKind

T = TypeVar("T")
NOBODY = 65534
OPS = ("echo", "slow", "size", "nan", "opaque", "wait", "release", "fail_user", "fail_internal")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to act as another user (uid 65534)")


class ServerThread:
    """A ControlServer with a test handler, on its own event loop in a background thread."""

    def __init__(self, socket_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.released = asyncio.Event()
        self.server = ControlServer(socket_path, self.handle, OPS)
        self.run(self.server.start())

    async def handle(self, op: str, args: dict[str, Any]) -> Any:
        if op == "slow":
            await asyncio.sleep(args["seconds"])
            return args["n"]
        if op == "size":
            return len(args["pad"])
        if op == "nan":
            return {"value": float("nan")}
        if op == "opaque":
            return object()
        if op == "wait":
            await self.released.wait()
            return "released"
        if op == "release":
            self.released.set()
            return None
        if op == "fail_user":
            raise UserError("no experiment named 'x'; known: a, b")
        if op == "fail_internal":
            raise RuntimeError("boom")
        return args

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return self.submit(coro).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def publish(self, *events: tuple[str, str | None, dict[str, Any]]) -> None:
        async def publish_all() -> None:
            for event in events:
                self.server.publish(*event)

        self.run(publish_all())

    def stop(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def folder() -> Iterator[Path]:
    """A short private folder under /tmp (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="automl-ctl-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def socket_path(folder: Path) -> Path:
    return folder / "run" / "control.sock"


@pytest.fixture
def server(socket_path: Path) -> Iterator[ServerThread]:
    running = ServerThread(socket_path)
    yield running
    running.stop()


def test_request_reply_round_trip(server: ServerThread, socket_path: Path) -> None:
    with Client(socket_path) as client:
        assert client.request("echo", x=1, name="café", nested={"a": [1, 2.5, None]}) == {
            "x": 1,
            "name": "café",
            "nested": {"a": [1, 2.5, None]},
        }
        assert client.request("echo") == {}
        assert client.request("nan") == {"value": None}


def test_requests_on_one_connection_are_answered_in_order(server: ServerThread, socket_path: Path) -> None:
    requests = [
        protocol.request_message(1, "slow", {"seconds": 0.2, "n": 1}),
        protocol.request_message("two", "echo", {}),
        protocol.request_message(3, "slow", {"seconds": 0, "n": 3}),
    ]
    with _raw(socket_path) as sock:
        sock.sendall(b"".join(protocol.encode(r) for r in requests))
        replies = [_read_line(sock) for _ in requests]
    assert [r["id"] for r in replies] == [1, "two", 3]
    assert [r["result"] for r in replies] == [1, {}, 3]


def test_connections_are_served_concurrently(server: ServerThread, socket_path: Path) -> None:
    waited: list[Any] = []

    def wait() -> None:
        with Client(socket_path) as client:
            waited.append(client.request("wait"))

    waiter = threading.Thread(target=wait)
    waiter.start()
    with Client(socket_path) as other:
        assert other.request("echo", n=1) == {"n": 1}
        other.request("release")
    waiter.join(10)
    assert waited == ["released"]


def test_socket_is_0600_in_a_0700_folder(server: ServerThread, socket_path: Path) -> None:
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
    assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(socket_path.parent).st_mode) == 0o700


def test_existing_folder_is_made_0700(socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o755)
    os.chmod(socket_path.parent, 0o755)
    running = ServerThread(socket_path)
    try:
        assert stat.S_IMODE(os.stat(socket_path.parent).st_mode) == 0o700
    finally:
        running.stop()


@needs_root
def test_folder_of_another_user_is_refused(socket_path: Path) -> None:
    socket_path.parent.mkdir()
    os.chown(socket_path.parent, NOBODY, NOBODY)
    with pytest.raises(UserError, match="belongs to uid 65534"):
        asyncio.run(_start_and_close(socket_path))
    assert not socket_path.exists()


def test_stale_socket_file_is_replaced(socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()
    with pytest.raises(DaemonNotRunning):
        Client(socket_path).request("echo")
    running = ServerThread(socket_path)
    try:
        with Client(socket_path) as client:
            assert client.request("echo", a=1) == {"a": 1}
    finally:
        running.stop()
    assert not socket_path.exists()


def test_live_socket_is_refused(server: ServerThread, socket_path: Path) -> None:
    with pytest.raises(DaemonAlreadyRunning, match="already running"):
        asyncio.run(_start_and_close(socket_path))
    with Client(socket_path) as client:
        assert client.request("echo", still="here") == {"still": "here"}


def test_unsafe_paths_are_refused(folder: Path) -> None:
    (folder / "file").write_text("not a socket")
    with pytest.raises(UserError, match="is not a socket"):
        asyncio.run(_start_and_close(folder / "file"))
    with pytest.raises(UserError, match="at most 107"):
        asyncio.run(_start_and_close(folder / ("x" * 120) / "control.sock"))
    assert (folder / "file").read_text() == "not a socket"


def test_subscribe_is_reserved() -> None:
    with pytest.raises(ValueError, match="subscribe"):
        ControlServer(Path("/tmp/x.sock"), _echo, ["echo", "subscribe"])


@pytest.mark.parametrize(
    ("line", "code", "reply_id", "says"),
    [
        (b"{not json", "bad_request", None, "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", "bad_request", None, "not valid UTF-8 JSON"),
        (b"[1, 2]", "bad_request", None, "must be a JSON object, not an array"),
        (b'"echo"', "bad_request", None, "must be a JSON object, not a string"),
        (b'{"v": 1, "id": 5}', "bad_request", 5, "missing field 'op'"),
        (b'{"v": 1, "id": 6, "op": "nope"}', "bad_request", 6, "known ops: echo, fail_internal"),
        (b'{"v": 2, "id": 7, "op": "echo"}', "unsupported_version", 7, "speaks version 1"),
        (b'{"id": 8, "op": "echo"}', "bad_request", 8, "missing field 'v'"),
        (b'{"v": "1", "id": 9, "op": "echo"}', "bad_request", 9, "'v' must be the protocol version"),
        (b'{"v": 1, "id": true, "op": "echo"}', "bad_request", None, "'id' must be an integer or a string"),
        (b'{"v": 1, "id": 10, "op": "echo", "args": []}', "bad_request", 10, "'args' must be an object"),
        (b'{"v": 1, "id": 11, "op": "echo", "extra": 1}', "bad_request", 11, "unknown field 'extra'"),
        (b'{"v": 1, "id": 12, "op": "echo", "args": {"x": NaN}}', "bad_request", None, "NaN is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "bad_request", None, "nested too deeply"),
        (
            b'{"v": 1, "id": 13, "op": "subscribe", "args": {"events": "metric"}}',
            "bad_request",
            13,
            "'events' must be a list of event kinds or null",
        ),
    ],
)
def test_malformed_requests_are_answered_and_the_connection_goes_on(
    server: ServerThread, socket_path: Path, line: bytes, code: str, reply_id: Any, says: str
) -> None:
    with _raw(socket_path) as sock:
        sock.sendall(line + b"\n\n \n" + protocol.encode(protocol.request_message(99, "echo", {"ok": 1})))
        reply = _read_line(sock)
        assert reply["ok"] is False and reply["id"] == reply_id and reply["v"] == 1
        assert reply["error"]["code"] == code
        assert says in reply["error"]["message"]
        assert _read_line(sock) == {"v": 1, "id": 99, "ok": True, "result": {"ok": 1}}


def test_oversized_line_is_refused_and_the_server_goes_on(server: ServerThread, socket_path: Path) -> None:
    with _raw(socket_path) as sock:
        try:
            sock.sendall(b"x" * (protocol.MAX_MESSAGE_BYTES + 1) + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = _read_line(sock)
        assert reply["error"]["code"] == "too_large" and reply["id"] is None
        assert _read_rest(sock) == b""
    head = b'{"v":1,"id":1,"op":"size","args":{"pad":"'
    tail = b'"}}'
    pad = protocol.MAX_MESSAGE_BYTES - len(head) - len(tail)
    with _raw(socket_path) as sock:
        sock.sendall(head + b"p" * pad + tail + b"\n")
        assert _read_line(sock)["result"] == pad
    with Client(socket_path) as client:
        with pytest.raises(ValueError, match="at most 1048576"):
            client.request("echo", pad="p" * protocol.MAX_MESSAGE_BYTES)
        assert client.request("echo", after="too large") == {"after": "too large"}


def test_handler_errors_become_error_replies(
    server: ServerThread, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Client(socket_path) as client:
        with pytest.raises(RemoteError) as user:
            client.request("fail_user")
        assert (user.value.code, user.value.message) == ("user_error", "no experiment named 'x'; known: a, b")
        with caplog.at_level(logging.ERROR, logger="automl.control.server"):
            with pytest.raises(RemoteError) as internal:
                client.request("fail_internal")
        assert (internal.value.code, internal.value.message) == ("internal", "internal error: RuntimeError: boom")
        assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
        with pytest.raises(RemoteError, match="internal error: TypeError: .*not JSON serializable"):
            client.request("opaque")
        assert client.request("echo", after="errors") == {"after": "errors"}


def test_subscribers_receive_the_events_they_asked_for(server: ServerThread, socket_path: Path) -> None:
    with Client(socket_path) as one, Client(socket_path) as everything, Client(socket_path) as metrics:
        one_events = one.subscribe(experiment="e1", events=["trial_metric", "trial_ended"])
        all_events = everything.subscribe()
        metric_events = metrics.subscribe(events=["trial_metric"])
        server.publish(
            ("trial_metric", "e1", {"step": 1}),
            ("trial_metric", "e2", {"step": 1}),
            ("trial_started", "e1", {"id": 3}),
            ("gpu_sample", None, {"load": [0.5]}),
            ("trial_metric", "e1", {"step": 2}),
            ("trial_ended", "e1", {}),
        )
        server.publish(("trial_metric", None, {"last": True}))
        assert [(e["event"], e["experiment"], e["data"]) for e in _take(one_events, 3)] == [
            ("trial_metric", "e1", {"step": 1}),
            ("trial_metric", "e1", {"step": 2}),
            ("trial_ended", "e1", {}),
        ]
        received = _take(all_events, 7)
        assert [e["event"] for e in received] == [
            "trial_metric",
            "trial_metric",
            "trial_started",
            "gpu_sample",
            "trial_metric",
            "trial_ended",
            "trial_metric",
        ]
        assert all(e["v"] == 1 and isinstance(e["time"], float) for e in received)
        assert [(e["experiment"], e["data"]) for e in _take(metric_events, 4)] == [
            ("e1", {"step": 1}),
            ("e2", {"step": 1}),
            ("e1", {"step": 2}),
            (None, {"last": True}),
        ]


def test_an_unknown_event_kind_is_an_error_and_a_known_one_reaches_subscribers(
    server: ServerThread, socket_path: Path
) -> None:
    with Client(socket_path) as client:
        events = client.subscribe()
        with pytest.raises(ValueError, match="trial_metirc"):
            server.publish(("trial_metirc", "e1", {"step": 1}))
        server.publish((EventKind.TRIAL_METRIC, "e1", {"step": 2}))
        assert [(e["event"], e["data"]) for e in _take(events, 1)] == [("trial_metric", {"step": 2})]


def test_an_event_that_is_not_json_is_logged_and_dropped(
    server: ServerThread, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Client(socket_path) as client:
        events = client.subscribe()
        with caplog.at_level(logging.ERROR, logger="automl.control.server"):
            server.publish(("trial_metric", "e1", {"value": object()}), ("trial_metric", "e1", {"value": float("inf")}))
        assert [e["data"] for e in _take(events, 1)] == [{"value": None}]
    assert "event 'trial_metric' of experiment e1 is not JSON" in caplog.text


def test_a_subscriber_that_never_reads_blocks_nobody_and_is_dropped(server: ServerThread, socket_path: Path) -> None:
    count = 30_000

    async def publish_many() -> None:
        for n in range(count):
            server.server.publish(
                "trial_metric", "e1", {"trial": n % 7, "step": n, "value": 0.123456789, "pad": "p" * 60}
            )
            if n % 500 == 0:
                await asyncio.sleep(0)

    with _raw(socket_path) as stuck:
        stuck.sendall(protocol.encode(protocol.request_message(1, "subscribe", {})))
        assert _read_line(stuck)["ok"] is True
        publishing = server.submit(publish_many())
        with Client(socket_path) as other:
            for n in range(20):
                assert other.request("echo", n=n) == {"n": n}
        publishing.result(30)
        lines = _read_rest(stuck).splitlines()
    assert 0 < len(lines) < count
    assert all(json.loads(line)["event"] == "trial_metric" for line in lines[:-1])
    last = json.loads(lines[-1])
    assert last["ok"] is False and last["error"]["code"] == "overflow"
    with Client(socket_path) as client:
        events = client.subscribe()
        server.publish(("trial_ended", None, {}))
        assert next(events)["event"] == "trial_ended"


@needs_root
def test_other_users_are_refused(folder: Path, socket_path: Path) -> None:
    async def scenario() -> tuple[bytes, bytes]:
        async with ControlServer(socket_path, _echo, OPS):
            os.chmod(folder, 0o711)
            os.chmod(socket_path.parent, 0o711)
            through_0600 = await _connect_as_nobody(socket_path)
            os.chmod(socket_path, 0o666)
            through_0666 = await _connect_as_nobody(socket_path)
            return through_0600, through_0666

    through_0600, through_0666 = asyncio.run(scenario())
    assert through_0600 == b"PermissionError"
    reply = json.loads(through_0666)
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden"


def test_close_ends_subscriptions_and_removes_the_socket(socket_path: Path) -> None:
    running = ServerThread(socket_path)
    with Client(socket_path) as client:
        events = client.subscribe()
        running.stop()
        assert list(events) == []
    assert not socket_path.exists()
    with pytest.raises(DaemonNotRunning):
        Client(socket_path).request("echo")


def test_client_close_from_another_thread_ends_a_subscription(server: ServerThread, socket_path: Path) -> None:
    client = Client(socket_path)
    received: list[list[dict[str, Any]]] = []
    events = client.subscribe()
    reader = threading.Thread(target=lambda: received.append(list(events)))
    reader.start()
    client.close()
    reader.join(10)
    assert received == [[]]


async def _echo(op: str, args: dict[str, Any]) -> Any:
    return args


async def _start_and_close(socket_path: Path) -> None:
    server = ControlServer(socket_path, _echo, OPS)
    await server.start()
    await server.close()


def _raw(socket_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(socket_path))
    return sock


def _read_line(sock: socket.socket) -> dict[str, Any]:
    """One line, read a byte at a time so nothing after it is consumed."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        assert byte, f"connection closed after {bytes(line)!r}"
        line += byte
    return json.loads(line)


def _read_rest(sock: socket.socket) -> bytes:
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return bytes(data)


def _take(events: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    received = list(islice(events, count))
    assert len(received) == count, f"the connection closed after {received}"
    return received


async def _connect_as_nobody(socket_path: Path) -> bytes:
    """Connect from a child forked (no threads exist) to run as uid 65534: what it received, or its error's name."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            try:
                sock.connect(str(socket_path))
                received = sock.recv(65536)
            except OSError as e:
                received = type(e).__name__.encode()
            os.write(write_end, received)
        finally:
            os._exit(0)
    os.close(write_end)
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        await asyncio.sleep(0.01)
    with os.fdopen(read_end, "rb") as pipe:
        return pipe.read()
