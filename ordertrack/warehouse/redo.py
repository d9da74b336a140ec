"""Redoing a whole warehouse transaction after a transient conflict (a deadlock, a serialization
failure, a lock held by another writer), for the engines that report one instead of waiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

T = TypeVar("T")

REDO_SECONDS = 60.0
"""How long one unit of work is redone before its conflict is raised to the caller (the worker
then keeps its batch and waits on; a one-shot command exits)."""


def redo_on_conflict(retryable: Callable[[BaseException], bool], transaction: Callable[[], T]) -> T:
    """Run `transaction` (the whole unit of work, from BEGIN) again while it fails with an error
    `retryable` accepts; nothing of a failed attempt was committed."""
    for attempt in Retrying(retry=retry_if_exception(retryable), wait=wait_exponential_jitter(0.05, 2.0),
                            stop=stop_after_delay(REDO_SECONDS), reraise=True):
        with attempt:
            return transaction()
    raise AssertionError("unreachable: Retrying re-raises the last failure")
