"""Inputs that claim more than they hold (issue #18): an .npy header with a shape of
terabytes, a frame whose shape product overflows 64 bits. Each is a problem+json 4xx
before anything is allocated, on a real data-plane server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from numpy.lib import format as npy_format

from agents import tensorframe
from agents.npy import load_npy
from agents.problems import HopError
from tests.agents.test_dataplane import TOKEN, Node, X, _partitions

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    a, b = Node("a", tmp_path), Node("b", tmp_path)
    try:
        a.start()
        b.start()
        _partitions(a, b, None, 0.0)
        yield a, b
    finally:
        a.stop()
        b.stop()


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4", payload: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    npy_format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload  # the magic included


def _is_problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail: str = response.json()["detail"]
    return detail


def test_an_npy_header_claiming_a_huge_shape_is_413_before_allocating(
    pair: tuple[Node, Node],
) -> None:
    a, _ = pair
    url = f"{a.url}/v1/infer/d"
    huge = httpx.post(url, content=_npy_header((100_000, 100_000, 100_000)), headers=AUTH)
    assert "[100000, 100000, 100000]" in _is_problem(huge, 413)
    # Within the cap, but the body holds less than the header says.
    short = httpx.post(url, content=_npy_header((1, 4), payload=b"\0" * 8), headers=AUTH)
    assert "16 bytes" in _is_problem(short, 422)
    pickled = httpx.post(
        url, content=_npy_header((1,), dtype="|O", payload=b"\0" * 8), headers=AUTH
    )
    _is_problem(pickled, 422)
    v3 = npy_format.magic(3, 0) + b"\x10\x00\x00\x00" + b" " * 16
    _is_problem(httpx.post(url, content=v3, headers=AUTH), 422)
    ok = httpx.post(url, content=_npy_header((1, 4), payload=X.tobytes()), headers=AUTH)
    assert ok.status_code == 200, ok.text


def test_a_frame_whose_shape_overflows_is_422(pair: tuple[Node, Node]) -> None:
    _, b = pair
    header = json.dumps(
        {"tensors": [{"name": "h", "dtype": "float32", "shape": [2**32, 2**32]}], "meta": {}}
    ).encode()
    frame = tensorframe.MAGIC + len(header).to_bytes(4, "little") + header
    response = httpx.post(
        f"{b.url}/v1/hop/d/m/1-1",
        content=frame,
        headers={**AUTH, "Content-Type": tensorframe.MEDIA_TYPE},
    )
    assert "[4294967296, 4294967296]" in _is_problem(response, 422)
    with pytest.raises(tensorframe.FrameError, match="needs"):
        tensorframe.decode(frame)


def test_npy_bodies_decode_without_a_copy_in_either_order() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    for layout in (array, np.asfortranarray(array)):
        buffer = io.BytesIO()
        np.save(buffer, layout, allow_pickle=False)
        np.testing.assert_array_equal(load_npy(buffer.getvalue(), 1 << 20), array)
    with pytest.raises(HopError) as caught:
        load_npy(_npy_header((2**40,)), 1 << 20)
    assert caught.value.status == 413
