"""Connections are bounded: a flood of idle clients neither exhausts the daemon's descriptors nor fails a running
experiment, idle clients are closed, subscribers are not, and a full listen backlog is waited out."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import resource
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from automl.control import protocol
from automl.control.client import Client, RemoteError
from automl.control.server import ACCEPT_BACKLOG, MAX_CLIENTS, ControlServer
from automl.states import EventKind
from tests.helpers import (
    STEPPING_TRIAL,
    automl,
    recorded_daemon_pid,
    running_daemon,
    show,
    submit,
    wait_for_status,
    write_config,
    write_trial,
)

IDLE_CLIENTS = 2000
DAEMON_FILE_LIMIT = 1024  # the common default soft limit, which 2,000 connections would exhaust


def open_idle_connections(socket_path: Path, count: int) -> tuple[list[socket.socket], int]:
    """`count` connections that never send anything, and the most descriptors the daemon held meanwhile."""
    daemon = psutil.Process(recorded_daemon_pid(socket_path.parent))
    connections, most = [], 0
    for i in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        while True:
            try:
                sock.connect(str(socket_path))
                break
            except BlockingIOError:  # the listen backlog is full for a moment
                time.sleep(0.01)
        connections.append(sock)
        if i % 100 == 0:
            most = max(most, daemon.num_fds())
    return connections, max(most, daemon.num_fds())


@pytest.fixture
def low_file_limit_daemon(home: Path) -> Iterator[Path]:
    """A daemon that may open at most DAEMON_FILE_LIMIT files (soft and hard), so it cannot raise its limit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_FILE_LIMIT, DAEMON_FILE_LIMIT))

    with running_daemon(home, preexec_fn=limit):
        yield home


@pytest.fixture
def many_files() -> Iterator[None]:
    """This test process may hold thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_CLIENTS + 200:
        pytest.skip(f"needs a hard limit of open files above {IDLE_CLIENTS + 200}: it is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_two_thousand_idle_connections_fail_nothing(tmp_path, low_file_limit_daemon, many_files):
    gate = tmp_path / "gate"  # the trials end only once the daemon answered under the idle connections
    waiting = f"import os\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\ntrial.report_final"
    write_trial(tmp_path, STEPPING_TRIAL.replace("trial.report_final", waiting))
    space = {"x": {"_type": "uniform", "_value": [0, 1]}, "pace": {"_type": "choice", "_value": [0.3]}}
    exp = submit(write_config(tmp_path, search_space=space, max_trials=4, concurrency=2))
    before = psutil.Process(recorded_daemon_pid(low_file_limit_daemon)).num_fds()
    connections, most_fds = open_idle_connections(low_file_limit_daemon / "daemon.sock", IDLE_CLIENTS)
    try:
        status = automl("daemon", "status", "--json", timeout=60)
        assert status.returncode == 0 and json.loads(status.stdout)["experiments"] == [exp], status.stderr
        gate.touch()
        view = wait_for_status(exp, "done", "failed", "stopped")
        assert view["status"] == "done"
        assert [(t["status"], t["steps"]) for t in view["trials"]] == [("succeeded", 5)] * 4
        # the clients it serves, and those accepted in the loop's last few rounds and not yet closed
        assert most_fds - before < MAX_CLIENTS + 4 * ACCEPT_BACKLOG, f"the daemon held {most_fds} descriptors"
        assert automl("pause", exp).returncode == 2, "the daemon still answers (the experiment has ended)"
    finally:
        for sock in connections:
            sock.close()
    assert show(exp)["status"] == "done"


# the control server's limits, in-process


@contextlib.contextmanager
def serving(**limits: Any) -> Iterator[tuple[Path, ControlServer, asyncio.AbstractEventLoop]]:
    """A ControlServer with `limits` answering `echo`, on an event loop in a background thread."""
    folder = Path(tempfile.mkdtemp(prefix="automl-conn-"))
    path = folder / "control.sock"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def echo(op: str, args: dict[str, Any]) -> Any:
        return args

    server = ControlServer(path, echo, ("echo",), **limits)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield path, server, loop
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        shutil.rmtree(folder, ignore_errors=True)


def raw(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    return sock


def goodbye(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """The line a closed connection was sent, and what followed it (nothing: the end)."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    line, _, rest = bytes(data).partition(b"\n")
    return json.loads(line), rest


def test_an_idle_connection_is_closed_and_a_subscriber_is_not():
    with serving(idle_timeout=0.3) as (path, server, loop):
        with Client(path) as subscriber, raw(path) as idle:
            events = subscriber.subscribe()
            reply, rest = goodbye(idle)
            assert reply["error"]["code"] == protocol.IDLE and "without a request" in reply["error"]["message"]
            assert rest == b""
            time.sleep(0.6)
            loop.call_soon_threadsafe(server.publish, EventKind.GPU_SAMPLE, None, {"n": 1})
            assert next(events)["data"] == {"n": 1}, "a subscriber that only listens is not idle"
            with Client(path) as client:
                assert client.request("echo", n=2) == {"n": 2}


def test_a_full_house_makes_room_by_closing_the_longest_idle_connection():
    with serving(max_clients=2) as (path, _, _):
        with raw(path) as oldest, raw(path) as newer:
            time.sleep(0.1)
            with Client(path) as client:
                assert client.request("echo", n=1) == {"n": 1}
            reply, _ = goodbye(oldest)
            assert reply["error"]["code"] == protocol.IDLE and "make room" in reply["error"]["message"]
            newer.sendall(protocol.encode(protocol.request_message(7, "echo", {"n": 7})))
            assert json.loads(newer.makefile("rb").readline())["result"] == {"n": 7}, "the newer one is served"


def test_when_every_place_is_a_subscriber_a_new_client_is_told_busy():
    with serving(max_clients=2) as (path, _, _):
        with Client(path) as first, Client(path) as second:
            first.subscribe()
            second.subscribe()
            with Client(path) as third, pytest.raises(RemoteError) as refused:
                third.request("echo")
            assert refused.value.code == protocol.BUSY and "at most 2 connections" in refused.value.message


def test_a_full_listen_backlog_is_waited_out():
    """Connections the daemon has not accepted yet fill the backlog; a client waits for room, no traceback."""
    folder = Path(tempfile.mkdtemp(prefix="automl-backlog-"))
    path = folder / "control.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    fillers = []
    try:
        while True:
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect(str(path))
            except BlockingIOError as e:
                assert e.errno == errno.EAGAIN
                filler.close()
                break
            fillers.append(filler)
        threading.Thread(target=_answer_after, args=(listener, 0.5), daemon=True).start()
        with Client(path, timeout=10) as client:
            assert client.request("ping") == "pong"
    finally:
        for sock in fillers:
            sock.close()
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


def _answer_after(listener: socket.socket, delay: float) -> None:
    """Start accepting after `delay` s; answer each connection's first request with "pong"."""
    time.sleep(delay)
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_pong, args=(conn,), daemon=True).start()


def _pong(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(10)
        try:
            request = json.loads(conn.makefile("rb").readline())
            conn.sendall(protocol.encode(protocol.ok_reply(request["id"], "pong")))
        except (OSError, ValueError):
            pass
