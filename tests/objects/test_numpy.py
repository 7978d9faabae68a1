"""serialize/deserialize of numpy arrays: out of band, read-only and zero-copy on the way back."""

from __future__ import annotations

import pytest

from actorcore.objects import ALIGNMENT, deserialize, serialize

np = pytest.importorskip("numpy")

pytestmark = pytest.mark.timeout(30)


def address(arr) -> int:
    return arr.__array_interface__["data"][0]


ARRAYS = {
    "int64": lambda: np.arange(1000, dtype=np.int64),
    "float32-2d": lambda: np.random.default_rng(1).random((30, 40), dtype=np.float32),
    "bool": lambda: np.array([True, False, True]),
    "complex": lambda: np.arange(10) * (1 + 2j),
    "structured": lambda: np.array(
        [(1, 2.5, b"ab"), (3, 4.5, b"cd")], dtype=[("i", "<i4"), ("f", "<f8"), ("s", "S2")]
    ),
    "fortran": lambda: np.asfortranarray(np.arange(24, dtype=np.int16).reshape(4, 6)),
    "zero-d": lambda: np.array(3.25),
    "empty": lambda: np.zeros((0, 5)),
    "big-endian": lambda: np.arange(5, dtype=">u4"),
}


@pytest.mark.parametrize("make", ARRAYS.values(), ids=ARRAYS.keys())
def test_round_trip_inline(make):
    arr = make()
    back = deserialize(serialize(arr).to_bytes())
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)
    if arr.size:
        assert back.flags.writeable is False


def test_arrays_travel_out_of_band_without_copy():
    arr = np.arange(10_000, dtype=np.float64)
    ser = serialize(arr)
    assert len(ser.buffers) == 1 and ser.buffers[0].nbytes == arr.nbytes
    assert len(ser.inband) < 200
    assert address(np.frombuffer(ser.buffers[0], np.uint8)) == address(arr)  # a view, no copy


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(100)[::3],
        lambda: np.arange(120, dtype=np.float32).reshape(10, 12)[:, 2:7],
        lambda: np.arange(60).reshape(3, 4, 5).transpose(1, 0, 2)[:, ::2],
    ],
    ids=["strided", "column-slice", "transposed"],
)
def test_non_contiguous_arrays_are_copied_to_contiguous(make):
    arr = make()
    assert not (arr.flags.c_contiguous or arr.flags.f_contiguous)
    ser = serialize(arr)
    assert len(ser.buffers) == 1  # still out of band
    back = deserialize(ser.to_bytes())
    assert np.array_equal(back, arr) and back.dtype == arr.dtype
    assert back.flags.c_contiguous


def test_nested_arrays_and_object_arrays():
    value = {
        "a": np.arange(5),
        "b": [np.ones((2, 2)), np.arange(10)[::2]],  # the nested strided one goes in band
        "o": np.array([1, "x", None], dtype=object),
    }
    ser = serialize(value)
    assert len(ser.buffers) == 2
    back = deserialize(ser.to_bytes())
    assert np.array_equal(back["a"], value["a"])
    assert np.array_equal(back["b"][0], value["b"][0])
    assert np.array_equal(back["b"][1], value["b"][1])
    assert list(back["o"]) == [1, "x", None]


def test_deserialized_arrays_are_views_of_the_region_and_aligned():
    arrays = [np.arange(7, dtype=np.int8), np.arange(33, dtype=np.float64)]
    ser = serialize(arrays)
    region = np.zeros(ser.total_size + ALIGNMENT, dtype=np.uint8)
    start = (-address(region)) % ALIGNMENT  # an aligned start, as a page-aligned mapping has
    view = memoryview(region)[start : start + ser.total_size]
    ser.write_into(view)
    back = deserialize(view)
    lo, hi = address(region) + start, address(region) + start + ser.total_size
    for arr, orig in zip(back, arrays, strict=True):
        assert lo <= address(arr) and address(arr) + arr.nbytes <= hi
        assert address(arr) % ALIGNMENT == 0
        assert arr.flags.writeable is False
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1
        with pytest.raises(ValueError, match="WRITEABLE"):
            arr.flags.writeable = True
        assert np.array_equal(arr, orig)
