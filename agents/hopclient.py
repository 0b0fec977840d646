"""A lean HTTP/1.1 client for moving frames between agents over plain `http://`.

A hop's budget is about 2 ms on top of the bytes' own time, and a general-purpose client
(httpx) spends more than that in per-request Python work on two shared cores. This client
does only what a hop needs: POST a body with `Content-Length`, read the answer by its
`Content-Length` (chunked and read-to-close are understood too, for foreign peers), and
keep one pool of idle keep-alive connections per peer `host:port`.

A kept-alive connection may have been closed by the peer while it sat idle (uvicorn
closes idle connections after its keep-alive timeout). Such a request fails before any
byte of an answer comes back; it is then sent once more on a fresh connection. A failure
on a fresh connection, or after part of an answer, or a timeout, is not retried.

Errors: `PeerUnreachable` (connection refused, reset, closed early), `PeerTimeout` (the
whole exchange, connection included, outlived its time), `PeerProtocolError` (an answer
that is not HTTP/1.x). Any HTTP status is an answer, not an error: the caller decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
Bytes = bytes | bytearray | memoryview
# A body: one buffer, or pieces sent back to back (a frame from `tensorframe.encode_parts`
# goes out without its tensors being copied).
Body = Bytes | Sequence[Bytes]
_BODYLESS = frozenset({204, 304})
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class PeerError(Exception):
    """The exchange with the peer failed; the message says how."""


class PeerUnreachable(PeerError):
    pass


class PeerTimeout(PeerError):
    pass


class PeerProtocolError(PeerError):
    pass


class _Stale(Exception):
    """A connection that failed before any byte of the answer: safe to try afresh."""


@dataclass
class PeerResponse:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    path: str  # with the query, ready for the request line
    authority: str  # for the Host header


@functools.lru_cache(maxsize=256)  # a hop's URL repeats on every request
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"the hop client speaks plain http:// only (got {url!r})")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host = parts.hostname
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return _Target(host, port, path, authority)


def _parse_head(head: bytes) -> tuple[int, bool, dict[str, str]]:
    """Status, whether the connection stays open, and the headers of an answer's head."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise PeerProtocolError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise PeerProtocolError(f"a malformed header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return int(code), keep, headers


class HopClient:
    """POSTs to peers over pooled keep-alive connections. One per agent, on its loop."""

    def __init__(
        self,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_idle_per_peer: int = 16,
        max_idle_s: float = 60.0,
        max_body_bytes: int = 1 << 30,
    ) -> None:
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_idle_per_peer = max_idle_per_peer
        self.max_idle_s = max_idle_s
        self.max_body_bytes = max_body_bytes
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        # Connections opened so far: tests and benchmarks read it to see reuse.
        self.connections_opened = 0
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        pool, self._idle = self._idle, {}
        for connections in pool.values():
            for conn in connections:
                conn.close()
        for connections in pool.values():
            for conn in connections:
                with contextlib.suppress(OSError):
                    await conn.writer.wait_closed()

    def idle_connections(self, url: str) -> int:
        """Kept-alive connections to `url`'s peer that are still open."""
        target = _target(url)
        return sum(1 for conn in self._idle.get((target.host, target.port), []) if conn.usable())

    async def post(
        self,
        url: str,
        body: Body,
        headers: Mapping[str, str],
        timeout_s: float | None = None,
    ) -> PeerResponse:
        """POST `body` to `url`; the answer whatever its status. `timeout_s` bounds the
        whole exchange (connecting, sending, the peer's work, reading the answer)."""
        if self._closed:
            raise RuntimeError("this HopClient is closed")
        target = _target(url)
        head = [f"POST {target.path} HTTP/1.1\r\nHost: {target.authority}\r\n"]
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} contains a line break")
            if name.lower() in _FRAMING:
                raise ValueError(f"header {name!r} is the client's to set")
            head.append(f"{name}: {value}\r\n")
        pieces = [body] if isinstance(body, bytes | bytearray | memoryview) else list(body)
        # Views as flat bytes: a transport slices what the socket did not take by bytes.
        parts: list[Bytes] = [
            p if isinstance(p, bytes | bytearray) else memoryview(p).cast("B") for p in pieces
        ]
        size = sum(len(part) for part in parts)
        head.append(f"Content-Length: {size}\r\n\r\n")
        request_head = "".join(head).encode("latin-1")
        if parts and isinstance(parts[0], bytes) and len(parts[0]) <= 4096:
            # A small first piece (a frame's header) rides in the same segment as the head.
            request_head += parts.pop(0)
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                try:
                    return await self._attempt(target, request_head, parts, may_reuse=True)
                except _Stale:
                    return await self._attempt(target, request_head, parts, may_reuse=False)
        except TimeoutError:
            raise PeerTimeout(f"{url}: no answer within {limit:g} s") from None

    async def _attempt(
        self,
        target: _Target,
        request_head: bytes,
        parts: list[Bytes],
        may_reuse: bool,
    ) -> PeerResponse:
        key = (target.host, target.port)
        conn = self._take_idle(key) if may_reuse else None
        reused = conn is not None
        if conn is None:
            conn = await self._connect(target)
        try:
            response, keep = await self._exchange(conn, request_head, parts, reused)
        except BaseException:
            conn.close()
            raise
        if keep and conn.usable() and conn.writer.transport.get_write_buffer_size() == 0:
            self._put_idle(key, conn)
        else:
            conn.close()
        return response

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        connections = self._idle.get(key)
        now = time.monotonic()
        while connections:
            conn = connections.pop()
            if conn.usable() and now - conn.idle_since < self.max_idle_s:
                return conn
            conn.close()
        return None

    def _put_idle(self, key: tuple[str, int], conn: _Connection) -> None:
        connections = self._idle.setdefault(key, [])
        if self._closed or len(connections) >= self.max_idle_per_peer:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        connections.append(conn)

    async def _connect(self, target: _Target) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                # A large stream limit: a body is read in one go, not paused every 128 KB.
                reader, writer = await asyncio.open_connection(
                    target.host, target.port, limit=4 * 1024 * 1024
                )
        except TimeoutError:
            raise PeerTimeout(
                f"http://{target.authority}: no connection within {self.connect_timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise PeerUnreachable(f"http://{target.authority}: {exc}") from None
        self.connections_opened += 1
        return _Connection(reader, writer)

    async def _exchange(
        self,
        conn: _Connection,
        request_head: bytes,
        parts: list[Bytes],
        reused: bool,
    ) -> tuple[PeerResponse, bool]:
        reader, writer = conn.reader, conn.writer
        head = b""
        # No drain between writing and reading: a peer may answer (413, 401) before it has
        # read the body, and the answer is what matters; the transport buffers the rest.
        try:
            writer.write(request_head)
            for part in parts:
                writer.write(part)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial and reused:
                    raise _Stale from None
                raise PeerUnreachable("the peer closed the connection before answering") from None
            except asyncio.LimitOverrunError:
                raise PeerProtocolError("the answer's head is too large") from None
            if len(head) > MAX_HEAD_BYTES:
                raise PeerProtocolError("the answer's head is too large")
            status, keep, headers = _parse_head(head)
            while 100 <= status < 200:  # an interim answer: the final one follows
                head = await reader.readuntil(b"\r\n\r\n")
                status, keep, headers = _parse_head(head)
            body_out, keep = await self._read_body(reader, status, headers, keep)
        except (ConnectionError, BrokenPipeError) as exc:
            if reused and not head:
                raise _Stale from None
            raise PeerUnreachable(f"the connection failed: {exc}") from None
        except asyncio.IncompleteReadError:
            raise PeerUnreachable("the peer closed the connection in mid-answer") from None
        except asyncio.LimitOverrunError:
            raise PeerProtocolError("an answer's line is too long") from None
        return PeerResponse(status, headers, body_out), keep

    async def _read_body(
        self, reader: asyncio.StreamReader, status: int, headers: dict[str, str], keep: bool
    ) -> tuple[bytes, bool]:
        if status in _BODYLESS:
            return b"", keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked(reader), keep
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise PeerProtocolError(f"a bad Content-Length: {declared[:40]!r}")
            length = int(declared)
            if length > self.max_body_bytes:
                raise PeerProtocolError(f"an answer of {length} bytes is over the cap")
            return (await reader.readexactly(length) if length else b""), keep
        # Neither: the body runs to the end of the connection, which cannot be reused.
        data = await reader.read(self.max_body_bytes + 1)
        chunks = [data]
        size = len(data)
        while data and size <= self.max_body_bytes:
            data = await reader.read(self.max_body_bytes + 1 - size)
            chunks.append(data)
            size += len(data)
        if size > self.max_body_bytes:
            raise PeerProtocolError("the answer is over the cap")
        return b"".join(chunks), False

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                length = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise PeerProtocolError(f"a bad chunk size: {line[:40]!r}") from None
            if length < 0:
                raise PeerProtocolError(f"a bad chunk size: {line[:40]!r}")
            if length == 0:
                # Trailers, if any, end with an empty line.
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(chunks)
            size += length
            if size > self.max_body_bytes:
                raise PeerProtocolError("the answer is over the cap")
            chunks.append(await reader.readexactly(length))
            if await reader.readexactly(2) != b"\r\n":
                raise PeerProtocolError("a chunk does not end with CRLF")
