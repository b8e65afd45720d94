"""One asyncio loop thread shared by every OPC UA endpoint.

asyncua is an asyncio library; its synchronous wrapper starts one thread and
one loop per client. With hundreds of endpoints that is hundreds of threads,
so every session runs its coroutines on this single loop instead, and the
actor threads block on `concurrent.futures.Future`s with timeouts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class OpcuaLoop:
    """A daemon thread running an asyncio event loop; coroutines are submitted to it."""

    _shared: ClassVar[OpcuaLoop | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "opcua-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._started.wait(timeout=5.0)

    @classmethod
    def shared(cls) -> OpcuaLoop:
        """The process-wide loop, started on first use (and again after `stop`)."""
        with cls._shared_lock:
            if cls._shared is None or not cls._shared.running:
                cls._shared = cls()
            return cls._shared

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop itself (for `call_soon_threadsafe` and the like)."""
        return self._loop

    @property
    def running(self) -> bool:
        """Whether the loop thread is alive and its loop not closed."""
        return self._thread.is_alive() and not self._loop.is_closed()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on this loop's thread (blocking there would deadlock)."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule `coro` on the loop; the returned future is safe to wait on from any other thread."""
        if not self.running:
            coro.close()
            raise RuntimeError("the OPC UA loop is stopped")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel the remaining tasks, stop the loop and join its thread."""
        if not self.running:
            return
        future = asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop)
        try:
            future.result(timeout=timeout_s)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
            logger.warning("OPC UA loop: tasks did not finish within %.1f s", timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=timeout_s)
        with OpcuaLoop._shared_lock:
            if OpcuaLoop._shared is self:
                OpcuaLoop._shared = None

    async def _cancel_all(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        try:
            self._loop.run_forever()
        finally:
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                self._loop.close()
                logger.debug("OPC UA loop thread stopped")


def stop_shared_loop() -> None:
    """Stop the process-wide loop if one runs (at shutdown, after the OPC UA actors); never starts one."""
    loop = OpcuaLoop._shared
    if loop is not None:
        loop.stop()
