from __future__ import annotations

import numpy as np
import pytest

from agents import tensorframe
from agents.tensorframe import FrameError


@pytest.mark.parametrize("dtype", sorted(tensorframe.DTYPES))
def test_round_trip_every_dtype(dtype: str) -> None:
    array = (np.arange(24) % 7).reshape(2, 3, 4).astype(dtype)
    frame = tensorframe.decode(tensorframe.encode({"x": array}, {"trace": [{"device": "a"}]}))
    assert frame.tensors["x"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(frame.tensors["x"], array)
    assert frame.meta == {"trace": [{"device": "a"}]}


def test_several_tensors_keep_their_names_order_and_shapes() -> None:
    tensors = {
        "a": np.ones((1, 3), np.float32),
        "b": np.zeros((0, 5), np.int64),
        "c": np.array(3.5, np.float64),
    }
    frame = tensorframe.decode(tensorframe.encode(tensors))
    assert list(frame.tensors) == ["a", "b", "c"]
    assert [t.shape for t in frame.tensors.values()] == [(1, 3), (0, 5), ()]
    assert float(frame.tensors["c"]) == 3.5


def test_non_contiguous_and_big_endian_input_are_normalised() -> None:
    base = np.arange(12, dtype=">f4").reshape(3, 4)
    frame = tensorframe.decode(tensorframe.encode({"t": base.T}))
    np.testing.assert_array_equal(frame.tensors["t"], base.T.astype("<f4"))


def test_frame_parts_are_views_of_the_tensors_and_join_to_the_frame() -> None:
    tensors = {
        "h": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 5), np.int64),
        "scalar": np.array(7, np.int16),
    }
    parts = tensorframe.encode_parts(tensors, {"trace": []})
    assert b"".join(parts) == tensorframe.encode(tensors, {"trace": []})
    assert len(parts) == 1 + len(tensors)
    # No copy: each piece after the header is the array's own memory.
    assert np.shares_memory(np.frombuffer(parts[1], np.uint8), tensors["h"])
    frame = tensorframe.decode(b"".join(parts))
    for name, array in tensors.items():
        np.testing.assert_array_equal(frame.tensors[name], array)
        assert frame.tensors[name].shape == array.shape


def test_the_overhead_is_a_small_header() -> None:
    array = np.zeros((1, 512, 13, 13), np.float32)
    encoded = tensorframe.encode({"r61": array})
    assert len(encoded) - array.nbytes < 200


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:6], "truncated"),
        (lambda b: b[:-1], "payload"),
        (lambda b: b + b"\0", "payload"),
    ],
)
def test_malformed_frames_are_refused(mangle: object, message: str) -> None:
    good = tensorframe.encode({"x": np.ones((2, 2), np.float32)})
    with pytest.raises(FrameError, match=message):
        tensorframe.decode(mangle(good))  # type: ignore[operator]


def _raw(header: bytes, payload: bytes = b"") -> bytes:
    return tensorframe.MAGIC + len(header).to_bytes(4, "little") + header + payload


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"tensors": [{"name": "x", "dtype": "object", "shape": [1]}]}', "unsupported dtype"),
        (b'{"tensors": [{"name": "x", "dtype": "float32", "shape": [-1]}]}', "non-negative"),
        (b'{"tensors": [{"dtype": "float32", "shape": [1]}]}', "name"),
        (b'{"tensors": 3}', "no tensor list"),
    ],
)
def test_headers_are_validated_before_any_array_is_made(header: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        tensorframe.decode(_raw(header, b"\0" * 4))


def test_duplicate_names_are_refused() -> None:
    header = (
        b'{"tensors": [{"name": "x", "dtype": "uint8", "shape": [1]},'
        b' {"name": "x", "dtype": "uint8", "shape": [1]}]}'
    )
    with pytest.raises(FrameError, match="twice"):
        tensorframe.decode(_raw(header, b"\1\2"))


def test_object_arrays_cannot_be_encoded() -> None:
    with pytest.raises(FrameError, match="cannot travel"):
        tensorframe.encode({"x": np.array([object()])})
