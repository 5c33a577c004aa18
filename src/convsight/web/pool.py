"""A bounded pool for model calls, so inference never runs on the server's event loop.

At most ``workers`` jobs run at once and at most ``queue`` more wait; a job past that is refused at
once (:class:`Busy`, answered 503) rather than piling up. A job that outlives its time limit is
answered 504 (:class:`TooSlow`), but it keeps its slot until its thread really finishes: Python
threads cannot be killed, so counting it as free would let a run of slow jobs overrun the bound.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from convsight.errors import ConvsightError

T = TypeVar("T")


class Busy(ConvsightError):
    """Every worker is busy and the queue is full (answered 503 with Retry-After)."""


class TooSlow(ConvsightError):
    """A job ran past the per-request time limit (answered 504)."""


def default_workers() -> int:
    """One worker per core, at most 4 (each holds a model call's activations in memory). With torch
    set to cores // workers threads, 2 workers of 1 thread served 8.2 requests/s on 2 cores against
    5.7 for 1 worker of 2 threads (benchmarks/serve.py, 4 clients)."""
    return max(1, min(4, os.cpu_count() or 1))


class InferencePool:
    """``workers`` threads plus a waiting room of ``queue`` jobs; ``timeout_s`` per job (queue wait included)."""

    def __init__(self, workers: int, queue: int, timeout_s: float) -> None:
        if workers < 1 or queue < 0 or timeout_s <= 0:
            raise ConvsightError(f"bad pool size: workers={workers} (>= 1), queue={queue} (>= 0), timeout={timeout_s} (> 0)")
        self.workers, self.queue, self.timeout_s = workers, queue, timeout_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convsight-infer")
        self._lock = threading.Lock()
        self._pending = 0  # running + waiting, decremented only when a job's thread is done
        self._mean_s = 1.0  # moving average of a job's run time, for Retry-After

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)``; raises :class:`Busy` when ``workers + queue`` jobs are already in."""
        with self._lock:
            if self._pending >= self.workers + self.queue:
                raise Busy(f"the server is busy ({self.workers} running, {self.queue} waiting); try again shortly")
            self._pending += 1
        try:
            fut = self._executor.submit(self._timed, fn, *args)
        except BaseException:
            self._release(None)
            raise
        fut.add_done_callback(self._release)
        return fut

    def _timed(self, fn: Callable[..., T], *args: Any) -> T:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - t0)

    def retry_after(self) -> int:
        """Whole seconds until a slot is likely free: the queue's drain time, within [1, 60]."""
        with self._lock:
            drain = self._mean_s * max(1, self._pending - self.workers + 1) / self.workers
        return max(1, min(60, math.ceil(drain)))

    def _release(self, _: object) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the pool and await it without blocking the event loop."""
        fut = self.submit(fn, *args)
        try:
            # shield: a timeout or a cancelled request must not cancel the concurrent future's bookkeeping
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), self.timeout_s)
        except TimeoutError:
            fut.cancel()  # frees the slot at once if it had not started; a running job finishes on its own
            raise TooSlow(f"the request took longer than the {self.timeout_s:g} s limit") from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
