"""Byte masks over profile indices → `pyroaring.BitMap`, fast.

pyroaring builds a BitMap from a Python iterable one member at a time, and from an
``array('I')`` of ids in bulk (2–55 ms for 10M profiles, growing with density). Writing
roaring's *portable serialisation* directly from the mask in Numba and deserialising it is
faster at every density (performance-baselines.md §6): each 65,536-id block becomes a
bitset container (more than 4,096 members) or a sorted uint16 array container, with no run
containers. Many masks are written in one pass over (mask, block) pairs shared out among threads: ten
10M-profile masks in about 15 ms on two threads, where one mask at a time on a thread pool
took 50–60 ms.

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
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
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
cttz: Any = _cttz_intrinsic  # (the streaming diff walks a gate's bits with it)


@numba.njit(inline="always")
def _container(words, mask, c, slot64, slot16):  # type: ignore[no-untyped-def]
    """Block c of a mask (ids 65,536c ..) as a container in its 8 KiB slot; its cardinality.

    ``words`` is the mask's whole 64-byte groups as uint64 words (8 per group); the tail
    (fewer than 64 profiles) is read from ``mask``. Loops index slices from 0, so Numba can
    see the indices are not negative and emits no wraparound check (which kept LLVM from
    unrolling the packing: 3x slower).
    """
    n = len(mask)
    whole = n >> 6
    block = np.empty(1024, np.uint64)
    w0 = c * 1024
    w1 = max(min(w0 + 1024, whole), w0)
    ws = words[w0 * 8: w1 * 8]
    card = _U0
    for i in range(w1 - w0):
        bits = _U0
        for q in range(8):
            x = ws[i * 8 + q]
            # Any nonzero byte → its low bit set: adding 0x7f to the low seven bits
            # carries into the top bit unless they are 0 (no carry across bytes).
            x = ((((x & _LOW7) + _LOW7) | x) >> np.uint64(7)) & _LOW8
            bits |= ((x * _MUL8) >> _S56) << np.uint64(8 * q)
        block[i] = bits
        card += _popcount(bits)
    for i in range(w1 - w0, 1024):
        block[i] = _U0
    if w0 <= whole < w0 + 1024 and whole * 64 < n:
        bits = _U0
        tail = mask[whole * 64:]
        for i in range(len(tail)):
            bits |= np.uint64(tail[i] != 0) << np.uint64(i)
        block[whole - w0] = bits
        card += _popcount(bits)
    if card > _ARRAY_MAX:
        s64 = slot64[c * 1024: c * 1024 + 1024]
        for i in range(1024):
            s64[i] = block[i]
    elif card > 0:
        s16 = slot16[c * 4096: c * 4096 + 4096]
        k = 0
        for i in range(1024):
            bits = block[i]
            while bits:
                s16[k] = np.uint16(i * 64 + cttz(bits))
                k += 1
                bits &= bits - _U1
    return card


@numba.njit(cache=True, nogil=True)
def _containers(words, masks, slots, cards, start, stop):  # type: ignore[no-untyped-def]  # noqa: PLR0917 (numba)
    """The containers of (mask, block) pairs ``start`` .. ``stop`` - 1 (pair t is block
    t % blocks of mask t // blocks: a row of ``masks``, its words a row of ``words``), each
    in its slot of that mask's row of ``slots``; cardinalities in ``cards``."""
    blocks = cards.shape[1]
    for t in range(start, stop):
        j = t // blocks
        c = t - j * blocks
        cards[j, c] = _container(words[j], masks[j], c, slots[j].view(np.uint64),
                                 slots[j].view(np.uint16))


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


def _serialise(masks: np.ndarray, n: int, threads: int = 1) -> list[np.ndarray]:
    """The portable serialisation of the first ``n`` bytes of each row of ``masks`` (a
    2-d uint8 array whose rows are 8-byte aligned), on ``threads`` threads."""
    if n >= 1 << 32:
        raise ValueError("a roaring bitmap holds 32-bit ids: at most 2**32 profiles")
    rows = masks[:, :n]
    words = masks[:, : (n >> 6) << 6].view(np.uint64)
    blocks = (n + 65535) >> 16
    slots = np.empty((len(masks), blocks * 8192), np.uint8)
    cards = np.zeros((len(masks), blocks), np.uint64)
    pairs = len(masks) * blocks
    if threads <= 1 or pairs < 2:
        _containers(words, rows, slots, cards, 0, pairs)
    else:
        # Pairs in many more chunks than threads: blocks differ in cost (array containers).
        bounds = np.linspace(0, pairs, min(pairs, 8 * threads) + 1).astype(np.int64)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda k: _containers(words, rows, slots, cards, bounds[k],
                                                bounds[k + 1]), range(len(bounds) - 1)))
    result = []
    for j in range(len(masks)):
        keys = np.flatnonzero(cards[j])
        used = cards[j, keys].astype(np.int64)
        size = 8 + 8 * len(keys) + int(np.where(used > _ARRAY_MAX, 8192, 2 * used).sum())
        out = np.empty(size, np.uint8)
        _compact(slots[j], keys, cards[j], out)
        result.append(out)
    return result


def _as_rows(masks: Sequence[np.ndarray] | np.ndarray,
             length: int | None = None) -> tuple[np.ndarray, int]:
    """Masks as the rows of one aligned 2-d uint8 array (no copy for a C-contiguous 2-d
    array whose rows are a multiple of 8 bytes, as a kernel's output is); their length."""
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        rows = masks.view(np.uint8) if masks.dtype == np.bool_ else masks
        n = rows.shape[1] if length is None else length
        if not 0 <= n <= rows.shape[1]:
            raise ValueError(f"masks of {rows.shape[1]} bytes have no {n} first bytes")
    else:
        arrays = [np.asarray(m) for m in masks]
        for m in arrays:
            if m.ndim != 1 or m.dtype not in (np.uint8, np.bool_):
                raise TypeError(f"a mask is a 1-d uint8 or bool array, not {m.dtype} {m.shape}")
        n = len(arrays[0]) if arrays else 0
        if any(len(m) != n for m in arrays):
            raise ValueError("masks of different lengths")
        if len(arrays) == 1 and arrays[0].flags.c_contiguous:
            rows = arrays[0].view(np.uint8)[None, :]
        else:
            rows = np.zeros((len(arrays), -(-n // 8) * 8), np.uint8)
            for j, m in enumerate(arrays):
                rows[j, :n] = m
    if rows.dtype != np.uint8:
        raise TypeError(f"a mask is a uint8 or bool array, not {rows.dtype}")
    if not rows.flags.c_contiguous or rows.ctypes.data % 8 or rows.shape[1] % 8:
        aligned = np.zeros((rows.shape[0], -(-rows.shape[1] // 8) * 8), np.uint8)
        aligned[:, : rows.shape[1]] = rows
        rows = aligned
    return rows, n


def portable_bytes(mask: np.ndarray) -> np.ndarray:
    """The portable roaring serialisation (uint8 array) of the indices set in ``mask``."""
    return _serialise(*_as_rows([mask]))[0]


def mask_to_bitmap(mask: np.ndarray) -> BitMap:
    """A BitMap of the indices where ``mask`` is nonzero."""
    return BitMap.deserialize(portable_bytes(mask).tobytes())


def masks_to_bitmaps(masks: Sequence[np.ndarray] | np.ndarray, threads: int = 1,
                     length: int | None = None) -> list[BitMap]:
    """`mask_to_bitmap` of each mask, or of the first ``length`` bytes of each row of a 2-d
    array (the fastest form: a kernel's output as it is, not copied). On ``threads``
    threads: a 2-d array's (mask, block) pairs shared out among them, so a few masks still
    use every thread; separate masks one at a time each."""
    if (isinstance(masks, np.ndarray) and masks.ndim == 2) or len(masks) < 2:
        rows, n = _as_rows(masks, length)
        serials = _serialise(rows, n, threads)
    else:  # separate masks: one by one, among the threads, not copied into one 2-d array
        # (1,000 masks of 1M profiles: a fresh gigabyte, 2.2 s of page faults to fill it);
        # a mask that must be aligned first is copied by the thread that writes it.
        if len({len(m) for m in masks}) > 1:
            raise ValueError("masks of different lengths")
        with ThreadPoolExecutor(max(1, threads)) as pool:
            serials = list(pool.map(lambda m: _serialise(*_as_rows([m], length))[0], masks))
    return [BitMap.deserialize(b.tobytes()) for b in serials]
