"""Byte masks over profile indices → `pyroaring.BitMap`, fast.

pyroaring builds a BitMap from a Python iterable one member at a time, and from an
``array('I')`` of ids in bulk (2–55 ms for 10M profiles, growing with density). Writing
roaring's *portable serialisation* directly from the mask in Numba and deserialising it is
faster at every density (about 1.5–2 ms per 10M-profile mask; performance-baselines.md §6):
each 65,536-id block becomes a bitset container (more than 4,096 members) or a sorted
uint16 array container, with no run containers.

Masks are ``uint8`` (or ``bool``) arrays with one byte per profile, 0 or 1 (any nonzero byte
counts as set). A mask whose length is not a multiple of 64 is fine; one whose data is not
8-byte aligned is copied once.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic
from pyroaring import BitMap

__all__ = ["mask_to_bitmap", "masks_to_bitmaps", "portable_bytes"]

_ARRAY_MAX = 4096  # a container with more members is a bitset
_NO_RUN_COOKIE = 12346  # portable format without run containers
_U0, _U1 = np.uint64(0), np.uint64(1)
# Eight 0/1 bytes → eight bits in the top byte, with one multiply (no partial products collide).
_LOW8 = np.uint64(0x0101010101010101)
_MUL8 = np.uint64(0x0102040810204080)
_S56 = np.uint64(56)


@intrinsic
def _popcount_intrinsic(typingctx, x):  # type: ignore[no-untyped-def]
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@intrinsic
def _cttz_intrinsic(typingctx, x):  # type: ignore[no-untyped-def]
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.cttz(args[0], context.get_constant(types.boolean, True))

    return types.uint64(types.uint64), codegen


_popcount: Any = _popcount_intrinsic  # LLVM's ctpop and cttz on a uint64
_cttz: Any = _cttz_intrinsic


@numba.njit(cache=True, nogil=True)
def _containers(words, mask, slots, cards):  # type: ignore[no-untyped-def]
    """Every block's container in its 8 KiB slot of ``slots``; its cardinality in ``cards``.

    ``words`` is the mask's whole 64-byte groups as uint64 words (8 per group); the tail
    (fewer than 64 profiles) is read from ``mask``.
    """
    n = len(mask)
    whole = n >> 6
    slot64 = slots.view(np.uint64)
    slot16 = slots.view(np.uint16)
    block = np.zeros(1024, np.uint64)
    for c in range(len(cards)):
        w0 = c * 1024
        w1 = min(w0 + 1024, whole)
        card = _U0
        for w in range(w0, w1):
            bits = _U0
            for q in range(8):
                x = words[w * 8 + q]
                x = (x | (x >> np.uint64(1)) | (x >> np.uint64(2)) | (x >> np.uint64(3))
                     | (x >> np.uint64(4)) | (x >> np.uint64(5)) | (x >> np.uint64(6))
                     | (x >> np.uint64(7))) & _LOW8  # any nonzero byte → 1
                bits |= ((x * _MUL8) >> _S56) << np.uint64(8 * q)
            block[w - w0] = bits
            card += _popcount(bits)
        for j in range(w1 - w0, 1024):
            block[j] = _U0
        if w0 <= whole < w0 + 1024 and whole * 64 < n:
            bits = _U0
            for i in range(whole * 64, n):
                bits |= np.uint64(mask[i] != 0) << np.uint64(i - whole * 64)
            block[whole - w0] = bits
            card += _popcount(bits)
        cards[c] = card
        if card > _ARRAY_MAX:
            for j in range(1024):
                slot64[c * 1024 + j] = block[j]
        elif card > 0:
            k = c * 4096
            for j in range(1024):
                bits = block[j]
                while bits:
                    slot16[k] = np.uint16(j * 64 + _cttz(bits))
                    k += 1
                    bits &= bits - _U1


@numba.njit(cache=True, nogil=True)
def _compact(slots, keys, cards, out):  # type: ignore[no-untyped-def]
    """Header (cookie, count, key/cardinality pairs, offsets) and the used slot bytes."""
    k = len(keys)
    h = out[: 8 + 8 * k].view(np.uint32)
    h[0] = _NO_RUN_COOKIE
    h[1] = k
    o = 8 + 8 * k
    for j in range(k):
        c = keys[j]
        card = cards[c]
        h[2 + j] = np.uint32(c) | (np.uint32(card - 1) << np.uint32(16))
        h[2 + k + j] = o
        size = 8192 if card > _ARRAY_MAX else 2 * card
        out[o: o + size] = slots[c * 8192: c * 8192 + size]
        o += size


def portable_bytes(mask: np.ndarray) -> np.ndarray:
    """The portable roaring serialisation (uint8 array) of the indices set in ``mask``."""
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    if mask.ndim != 1 or mask.dtype != np.uint8:
        raise TypeError(f"a mask is a 1-d uint8 or bool array, not {mask.dtype} {mask.shape}")
    if len(mask) >= 1 << 32:
        raise ValueError("a roaring bitmap holds 32-bit ids: at most 2**32 profiles")
    if not mask.flags.c_contiguous or mask.ctypes.data % 8:
        mask = np.ascontiguousarray(mask).copy()
    n = len(mask)
    words = mask[: (n >> 6) << 6].view(np.uint64)
    blocks = (n + 65535) >> 16
    slots = np.empty(blocks * 8192, np.uint8)
    cards = np.zeros(blocks, np.uint64)
    _containers(words, mask, slots, cards)
    keys = np.flatnonzero(cards)
    used = cards[keys].astype(np.int64)
    size = 8 + 8 * len(keys) + int(np.where(used > _ARRAY_MAX, 8192, 2 * used).sum())
    out = np.empty(size, np.uint8)
    _compact(slots, keys, cards, out)
    return out


def mask_to_bitmap(mask: np.ndarray) -> BitMap:
    """A BitMap of the indices where ``mask`` is nonzero."""
    return BitMap.deserialize(portable_bytes(mask).tobytes())


def masks_to_bitmaps(masks: Sequence[np.ndarray], threads: int = 1) -> list[BitMap]:
    """`mask_to_bitmap` of each mask, the serialisations on ``threads`` threads (no GIL)."""
    if threads <= 1 or len(masks) <= 1:
        return [mask_to_bitmap(m) for m in masks]
    with ThreadPoolExecutor(threads) as pool:
        serialised = list(pool.map(portable_bytes, masks))
    return [BitMap.deserialize(b.tobytes()) for b in serialised]
