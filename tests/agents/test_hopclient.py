"""The hop client against real servers: uvicorn in a thread on a free port, and, for a
peer that drops a kept-alive connection at the worst moment, a raw asyncio server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from agents.hopclient import (
    HopClient,
    PeerProtocolError,
    PeerResponse,
    PeerTimeout,
    PeerUnreachable,
)
from tests.harness.ports import free_port


async def peer_app(scope: Scope, receive: Receive, send: Send) -> None:
    """/echo: the body back, with the client's port (which shows connection reuse);
    /problem: a problem+json 422; /close: answers with Connection: close; /chunked: the
    body back in two chunks of unknown total length; /slow: never answers (waits for the
    client to go away)."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    client = scope["client"]
    assert isinstance(client, tuple)
    headers = [(b"x-client-port", str(client[1]).encode())]
    if path == "/slow":
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    if path == "/problem":
        detail = {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
                  "detail": "tensor 'h' has the wrong shape"}  # fmt: skip
        payload = json.dumps(detail).encode()
        await send({"type": "http.response.start", "status": 422, "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(payload)).encode()), *headers]})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})
        return
    if path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:]})
        return
    if path == "/close":
        headers.append((b"connection", b"close"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Peer:
    def __init__(self, timeout_keep_alive: int = 5) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            peer_app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            timeout_keep_alive=timeout_keep_alive,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Peer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the test peer did not start")
            threading.Event().wait(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer() as running:
        yield running


def run(coro_fn: Callable[[HopClient], object], client: HopClient | None = None) -> object:
    async def main() -> object:
        hops = client or HopClient(timeout_s=10.0)
        try:
            return await coro_fn(hops)  # type: ignore[misc]
        finally:
            await hops.aclose()

    return asyncio.run(main())


def test_posts_and_reuses_one_connection(peer: Peer) -> None:
    async def go(hops: HopClient) -> list[PeerResponse]:
        answers = []
        for k in range(5):
            body = bytes([k]) * (100_000 * k)  # empty, then bodies over 64 KB
            answers.append(await hops.post(f"{peer.url}/echo", body, {"X-Test": "1"}))
            assert answers[-1].body == body
        # A body in pieces (a frame from encode_parts) arrives as their concatenation;
        # a view of 3 float32 counts as its 12 bytes.
        floats = np.arange(3, dtype=np.float32).data
        pieces: list[bytes | bytearray | memoryview] = [
            b"head",
            memoryview(b"\x01" * 70_000),
            floats,
            bytearray(b"tail"),
        ]
        answers.append(await hops.post(f"{peer.url}/echo", pieces, {}))
        assert hops.connections_opened == 1
        assert hops.idle_connections(peer.url) == 1
        return answers

    answers = run(go)
    assert isinstance(answers, list)
    expected = b"head" + b"\x01" * 70_000 + np.arange(3, dtype=np.float32).tobytes() + b"tail"
    assert answers[-1].body == expected
    assert all(a.status == 200 for a in answers)
    # The server saw every request come from the same client port: one connection.
    assert len({a.headers["x-client-port"] for a in answers}) == 1


def test_concurrent_posts_open_connections_and_keep_them(peer: Peer) -> None:
    async def go(hops: HopClient) -> None:
        bodies = [bytes([k]) * 200_000 for k in range(4)]
        answers = await asyncio.gather(*(hops.post(f"{peer.url}/echo", b, {}) for b in bodies))
        assert [a.body for a in answers] == bodies
        assert hops.connections_opened == 4
        assert hops.idle_connections(peer.url) == 4
        await asyncio.gather(*(hops.post(f"{peer.url}/echo", b, {}) for b in bodies))
        assert hops.connections_opened == 4

    run(go)


def test_an_error_status_is_an_answer_with_the_peers_problem(peer: Peer) -> None:
    async def go(hops: HopClient) -> PeerResponse:
        return await hops.post(f"{peer.url}/problem", b"x", {})

    answer = run(go)
    assert isinstance(answer, PeerResponse)
    assert answer.status == 422
    assert answer.media_type == "application/problem+json"
    assert json.loads(answer.body)["detail"] == "tensor 'h' has the wrong shape"


def test_chunked_answers_and_connection_close(peer: Peer) -> None:
    async def go(hops: HopClient) -> None:
        body = b"abc" * 50_000
        chunked = await hops.post(f"{peer.url}/chunked", body, {})
        assert chunked.body == body and "content-length" not in chunked.headers
        assert hops.idle_connections(peer.url) == 1
        closing = await hops.post(f"{peer.url}/close", b"bye", {})
        assert closing.body == b"bye"
        # The peer said it closes: the connection is not kept.
        assert hops.idle_connections(peer.url) == 0
        assert (await hops.post(f"{peer.url}/echo", b"again", {})).body == b"again"
        assert hops.connections_opened == 2

    run(go)


def test_a_connection_the_peer_closed_while_idle_is_not_reused() -> None:
    # uvicorn closes connections idle for over a second; the pool notices and drops them.
    with Peer(timeout_keep_alive=1) as peer:

        async def go(hops: HopClient) -> None:
            first = await hops.post(f"{peer.url}/echo", b"one", {})
            assert hops.idle_connections(peer.url) == 1
            deadline = asyncio.get_running_loop().time() + 15
            while hops.idle_connections(peer.url) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
            assert hops.idle_connections(peer.url) == 0, "the peer never closed the idle one"
            second = await hops.post(f"{peer.url}/echo", b"two", {})
            assert second.body == b"two" and hops.connections_opened == 2
            assert first.headers["x-client-port"] != second.headers["x-client-port"]

        run(go)


def test_a_request_on_a_connection_dropped_under_it_is_sent_once_more() -> None:
    """A peer that answers the first request on each connection, keeps it open, and
    closes it without a word when a second request comes: the race of a keep-alive
    timeout. The client sends that request again, once, on a fresh connection."""
    seen: list[tuple[int, bytes]] = []
    connections = 0
    answer_first = True

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        number, connections = connections, connections + 1
        for k in range(2):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break  # the client closed it
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            seen.append((number, body))
            if k == 1 or not answer_first:
                break  # hang up, unanswered
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        writer.close()

    async def go(hops: HopClient) -> None:
        nonlocal answer_first
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        try:
            assert (await hops.post(url, b"first", {})).body == b"first"
            assert (await hops.post(url, b"second", {})).body == b"second"
            assert hops.connections_opened == 2
            # A fresh connection that fails is an error at once: no second try.
            await hops.aclose()
            fresh = HopClient(timeout_s=10.0)
            answer_first = False
            with pytest.raises(PeerUnreachable, match="closed the connection"):
                await fresh.post(url, b"third", {})
            assert fresh.connections_opened == 1
            await fresh.aclose()
        finally:
            server.close()
            await server.wait_closed()

    run(go)
    # The second request went out twice: on the first connection, then on a new one.
    assert seen == [(0, b"first"), (0, b"second"), (1, b"second"), (2, b"third")]


def test_an_unreachable_peer() -> None:
    url = f"http://127.0.0.1:{free_port()}/echo"  # nothing listens there

    async def go(hops: HopClient) -> None:
        with pytest.raises(PeerUnreachable, match=r"127\.0\.0\.1"):
            await hops.post(url, b"x", {})

    run(go)


def test_a_peer_that_does_not_answer_in_time(peer: Peer) -> None:
    async def go(hops: HopClient) -> None:
        with pytest.raises(PeerTimeout, match=r"no answer within 0\.3 s"):
            await hops.post(f"{peer.url}/slow", b"x" * 100_000, {})
        # The timed-out connection is not reused; the client goes on working.
        assert hops.idle_connections(peer.url) == 0
        assert (await hops.post(f"{peer.url}/echo", b"ok", {})).body == b"ok"
        # A per-request limit overrides the client's.
        with pytest.raises(PeerTimeout, match=r"no answer within 0\.1 s"):
            await hops.post(f"{peer.url}/slow", b"x", {}, timeout_s=0.1)

    run(go, HopClient(timeout_s=0.3))


def test_a_peer_that_does_not_speak_http() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    async def go(hops: HopClient) -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        try:
            with pytest.raises(PeerProtocolError, match=r"not an HTTP/1\.x answer"):
                await hops.post(url, b"", {})
        finally:
            server.close()
            await server.wait_closed()

    run(go)


def test_bad_urls_and_headers_are_refused_before_connecting() -> None:
    async def go(hops: HopClient) -> None:
        with pytest.raises(ValueError, match="plain http"):
            await hops.post("https://127.0.0.1:1/x", b"", {})
        with pytest.raises(ValueError, match="no host"):
            await hops.post("http:///x", b"", {})
        with pytest.raises(ValueError, match="line break"):
            await hops.post("http://127.0.0.1:1/x", b"", {"X-Evil": "a\r\nInjected: 1"})
        with pytest.raises(ValueError, match="the client's to set"):
            await hops.post("http://127.0.0.1:1/x", b"", {"Content-Length": "3"})
        assert hops.connections_opened == 0

    run(go)
