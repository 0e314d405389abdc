"""`store.bitmaps`: masks written as roaring's portable format equal pyroaring's own build."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroaring import BitMap

from store.bitmaps import mask_to_bitmap, masks_to_bitmaps, portable_bytes


def expected(mask: np.ndarray) -> BitMap:
    return BitMap(np.flatnonzero(mask).astype(np.uint32).tolist())


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 4095, 65_535, 65_536, 65_537, 200_003])
@pytest.mark.parametrize("density", [0.0, 0.001, 0.06, 0.5, 1.0])
def test_every_container_kind_and_tail(n: int, density: float) -> None:
    rng = np.random.default_rng(n)
    mask = (rng.random(n) < density).astype(np.uint8)
    assert mask_to_bitmap(mask) == expected(mask)
    assert BitMap.deserialize(portable_bytes(mask).tobytes()) == expected(mask)


def test_containers_either_side_of_the_array_limit() -> None:
    mask = np.zeros(3 * 65_536 + 10, np.uint8)
    mask[:4096] = 1  # exactly 4,096: an array container
    mask[65_536: 65_536 + 4097] = 1  # 4,097: a bitset
    mask[-1] = 1  # the tail, in the last (partial) block
    assert mask_to_bitmap(mask) == expected(mask)


@given(st.lists(st.integers(0, 255), max_size=300), st.integers(0, 7))
def test_any_nonzero_byte_is_a_member(values: list[int], skip: int) -> None:
    buffer = np.zeros(len(values) + skip, np.uint8)
    mask = buffer[skip:]  # also unaligned data
    mask[:] = values
    assert mask_to_bitmap(mask) == expected(mask)
    assert mask_to_bitmap(mask.astype(bool)) == expected(mask)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_several_masks_on_threads(threads: int) -> None:
    # Separate masks, each written as it is: bool, uint8, an unaligned view.
    rng = np.random.default_rng(7)
    masks = [(rng.random(150_003) < d).astype(np.uint8) for d in (0.0, 0.01, 0.3, 0.9)]
    masks[1] = masks[1].astype(bool)
    masks[2] = np.concatenate([[1], masks[2]]).astype(np.uint8)[1:]
    assert masks_to_bitmaps(masks, threads) == [expected(m) for m in masks]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_rows_of_a_kernel_output_as_they_are(threads: int) -> None:
    # A kernel's output: rows padded to 64 bytes, garbage after the profiles (ignored).
    rng = np.random.default_rng(threads)
    n = 3 * 65_536 + 77
    rows = rng.integers(0, 3, (5, -(-n // 64) * 64)).astype(np.uint8)
    rows[1] = 0
    rows[2, : 70_000] = 0
    got = masks_to_bitmaps(rows, threads, n)
    assert got == [expected(r[:n]) for r in rows]
    assert masks_to_bitmaps(rows[:, :n].astype(bool), threads) == got  # rows not 8-byte long
    assert masks_to_bitmaps([], threads) == []


def test_refuses_what_is_not_a_mask() -> None:
    with pytest.raises(TypeError, match="mask"):
        portable_bytes(np.zeros((2, 2), np.uint8))
    with pytest.raises(TypeError, match="mask"):
        portable_bytes(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="lengths"):
        masks_to_bitmaps([np.zeros(3, np.uint8), np.zeros(4, np.uint8)])
    with pytest.raises(ValueError, match="have no 9 first bytes"):
        masks_to_bitmaps(np.zeros((2, 8), np.uint8), 1, 9)
