"""Streaming multipart uploads with a size cap enforced while the bytes arrive.

Starlette's form parser spools a whole file before the handler runs; here every chunk is
counted as it comes off the socket and written to a staging file, so an oversized upload
is refused (413) after at most the cap has been read, and nothing of it is kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from orchestrator.artifacts import disk_full
from orchestrator.errors import InsufficientStorage, Invalid, TooLarge

_MAX_FIELD_BYTES = 64 * 1024
# Headers, boundaries and small fields around the file: allowed beyond the file cap.
_ENVELOPE_BYTES = 1 << 20


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    file: Path | None = None
    filename: str | None = None

    def discard(self) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)


async def read_upload(
    request: Request, file_field: str, max_bytes: int, staging: Callable[[], Path]
) -> Upload:
    """Parse a multipart/form-data body: small text fields, and one file field written to
    a staging path. Raises TooLarge past max_bytes, Invalid for a malformed body; on any
    error the staging file is removed."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise Invalid(f"the body must be multipart/form-data with a {file_field!r} file part")
    declared = request.headers.get("content-length")
    limit_mb = max_bytes / 1e6
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + _ENVELOPE_BYTES:
        raise TooLarge(f"{file_field}: the upload exceeds the limit of {limit_mb:g} MB")

    result = Upload()
    part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.header_value.extend(data[start:end])

    def on_header_end() -> None:
        part.headers[bytes(part.header_field).lower()] = bytes(part.header_value)
        part.header_field.clear()
        part.header_value.clear()

    def on_headers_finished() -> None:
        _, opts = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = opts.get(b"name", b"").decode("utf-8", "replace")
        part.size = 0
        part.buf = bytearray()
        if part.name == file_field and b"filename" in opts:
            if result.file is not None:
                raise Invalid(f"{file_field}: only one file may be uploaded", field=file_field)
            result.file = staging()
            result.filename = opts[b"filename"].decode("utf-8", "replace")
            part.sink = result.file.open("wb")
        part.headers.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.size += end - start
        if part.sink is not None:
            if part.size > max_bytes:
                raise TooLarge(f"{file_field}: the upload exceeds the limit of {limit_mb:g} MB")
            part.sink.write(data[start:end])
        else:
            if part.size > _MAX_FIELD_BYTES:
                raise Invalid(f"{part.name}: a form field is limited to 64 KiB", field=part.name)
            part.buf.extend(data[start:end])

    def on_part_end() -> None:
        if part.sink is not None:
            part.close()
        else:
            result.fields[part.name] = bytes(part.buf).decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except (TooLarge, Invalid):
        part.close()
        result.discard()
        raise
    except OSError as exc:
        with contextlib.suppress(OSError):  # closing flushes: the disk may still be full
            part.close()
        result.discard()
        if disk_full(exc):
            raise InsufficientStorage(
                f"{file_field}: the artifact store's volume is full ({exc.strerror}); "
                "nothing of this upload was kept. Free space there or enlarge it, then "
                "upload again"
            ) from None
        raise
    except Exception as exc:  # the parser's own errors: a malformed body
        part.close()
        result.discard()
        raise Invalid(f"the multipart body is malformed ({exc})") from None
    try:
        part.close()
    except OSError as exc:
        result.discard()
        if disk_full(exc):
            raise InsufficientStorage(
                f"{file_field}: the artifact store's volume is full ({exc.strerror}); "
                "nothing of this upload was kept. Free space there or enlarge it, then "
                "upload again"
            ) from None
        raise
    if result.file is None:
        raise Invalid(
            f"{file_field}: a file part named {file_field!r} is required", field=file_field
        )
    return result


@dataclass
class _Part:
    """The part being parsed."""

    name: str = ""
    size: int = 0
    sink: IO[bytes] | None = None
    buf: bytearray = field(default_factory=bytearray)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None
