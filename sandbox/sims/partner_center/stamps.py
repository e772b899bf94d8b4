"""Ids, timestamps and eTags written the way Partner Center writes them, reproducible from a seed."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid


class Stamps:
    """One source of ids, times and eTags per simulator, so a seed gives the same ids in the same order."""

    def __init__(self, seed: int = 0) -> None:
        self._ids = random.Random(seed)
        self._lock = threading.Lock()
        self._last_tick = 0
        self._etag_counter = 0

    def new_id(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def now(self) -> str:
        """Strictly increasing UTC time with 7 fractional digits.

        Microseconds are unique per write, so the 6-digit truncation of OData date comparisons can never
        tie two different writes; the 7th digit is decoration, as on the real service.
        """
        with self._lock:
            ns = time.time_ns()
            micros = max(ns // 1000, self._last_tick + 1)
            self._last_tick = micros
        stamp = dt.datetime.fromtimestamp(micros // 1_000_000, dt.UTC)
        return f"{stamp:%Y-%m-%dT%H:%M:%S}.{micros % 1_000_000:06d}{(ns // 100) % 10}Z"

    def new_etag(self) -> str:
        """A quoted eTag like ``"2500ec5a-0000-0000-0000-5bf4967d0000"`` (reference §1.6)."""
        with self._lock:
            self._etag_counter = (self._etag_counter + 1) % 0x10000
            return f'"0000{self._etag_counter:04x}-0000-0000-0000-{int(time.time()) & 0xFFFFFFFF:08x}0000"'


def offset_form(timestamp: str) -> str:
    """Events write UTC as ``+00:00`` (``2018-02-17T00:05:39.5485487+00:00``); the REST resource uses ``Z``."""
    return timestamp[:-1] + "+00:00" if timestamp.endswith("Z") else timestamp


def utc_iso(*, offset: bool = True) -> str:
    """Now, with 7 fractional digits; validation results write it without an offset (reference §4.1)."""
    now = dt.datetime.now(dt.UTC)
    text = f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond:06d}0"
    return f"{text}Z" if offset else text
