"""A minimal HTTP/1.1 client for load generators: keep-alive connections over raw asyncio
streams, requests prebuilt as bytes, and a response parser that reads the status line,
Content-Length (or chunked framing) and the body, nothing else.

Why not httpx: on this project's two-core machine httpx costs several times the server's
own CPU per request (a load generator on it saturated its core at about 560 requests/s
while the server sat at 40% of one), so the client library, not the server, would decide
the figures. This one sustains thousands of requests per second on one core.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit


def split_url(url: str) -> tuple[str, int]:
    """`http://host:port` -> (host, port)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"need an http://host:port URL, got {url!r}")
    return parts.hostname, parts.port or 80


def request_bytes(
    method: str, host: str, path: str, body: bytes = b"", token: str | None = None
) -> bytes:
    """A whole request: build it once and send it as many times as needed."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if token is not None:
        head += f"Authorization: Bearer {token}\r\n"
    if body or method in ("POST", "PUT", "PATCH"):
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def json_request(method: str, host: str, path: str, doc: Any, token: str | None = None) -> bytes:
    return request_bytes(method, host, path, json.dumps(doc).encode(), token)


class Connection:
    """One keep-alive connection; one request at a time. Reopened after a failure or a
    `Connection: close`, so a caller only sees the exception of the request that failed."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one exchange."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        try:
            self._writer.write(request)
            status, body, close = await read_response(self._reader)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent to this client
                break
            parts.append(await reader.readexactly(size + 2))
        return status, b"".join(p[:-2] for p in parts), close
    return status, (await reader.readexactly(length) if length else b""), close


async def server_sent_events(
    host: str, port: int, path: str, token: str | None = None
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) from a `text/event-stream` answer (chunked), until the server ends it;
    comment lines (keep-alives) are skipped and each `data:` is parsed as JSON."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request_bytes("GET", host, path, token=token))
        head = await reader.readuntil(b"\r\n\r\n")
        if int(head[9:12]) != 200:
            raise RuntimeError(f"GET {path}: {head.splitlines()[0].decode()}")
        buffer = b""
        event = ""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return
            buffer += (await reader.readexactly(size + 2))[:-2]
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    yield event, json.loads(line[5:])
    finally:
        writer.close()
