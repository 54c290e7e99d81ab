"""CPU-heavy steps on big inputs run in a worker thread, so the event loop keeps serving others.

DKIM signing of a 10 MB message, parsing one for its bodies or reading an SMTP submission holds
the loop for a third of a second or more: every other request (and /health) would wait. Small
inputs stay on the loop, where a thread hop would cost more than the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

OFFLOAD_BYTES = 64 * 1024


async def cpu_bound(size: int, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`func(*args, **kwargs)`, in a thread when `size` (the bytes it works on) is large."""
    if size < OFFLOAD_BYTES:
        return func(*args, **kwargs)
    return await asyncio.to_thread(func, *args, **kwargs)
