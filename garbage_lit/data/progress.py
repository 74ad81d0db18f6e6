"""Progress bars for the long data steps (scan, cache fills): tqdm, as Lightning's own bar, on stderr.

A bar shows the count, the rate (images/s) and the time left; it stays quiet when stderr is not a
terminal (logs, CI, a sweep's job output), so only a person watching sees it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None, total: int, desc: str, min_total: int = 0) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand); off when ``total < min_total`` or not a terminal."""
    return tqdm(iterable, total=total, desc=desc, unit="img", dynamic_ncols=True,
                disable=None if total >= min_total else True)
