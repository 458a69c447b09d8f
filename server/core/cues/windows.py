"""Fixed-size rolling windows: memory stays flat however long a session runs."""

from __future__ import annotations

from collections import deque


class RollingSum:
    """Integer sum over the last `span_ms`, kept in a ring of fixed-width buckets.

    The window covers the bucket holding the newest time seen and the buckets before it;
    adding is O(1) amortised (each bucket is cleared once per lap of the ring).
    """

    __slots__ = ("_bucket_ms", "_head", "_size", "_slots", "total")

    def __init__(self, span_ms: int, bucket_ms: int = 1000) -> None:
        self._bucket_ms = bucket_ms
        self._size = max(1, -(-span_ms // bucket_ms))
        self._slots = [0] * self._size
        self._head = -1  # index of the newest bucket (absolute, not modulo)
        self.total = 0

    def advance(self, t_ms: int) -> None:
        """Move the window so that it ends at `t_ms`, forgetting what fell out."""
        bucket = t_ms // self._bucket_ms
        head = self._head
        if bucket <= head:
            return
        slots, size = self._slots, self._size
        if bucket - head >= size:
            for i in range(size):
                slots[i] = 0
            self.total = 0
        else:
            total = self.total
            for absolute in range(head + 1, bucket + 1):
                i = absolute % size
                total -= slots[i]
                slots[i] = 0
            self.total = total
        self._head = bucket

    def add(self, t_ms: int, value: int) -> None:
        """Add `value` at `t_ms`; values older than the window are ignored."""
        bucket = t_ms // self._bucket_ms
        if bucket > self._head:
            self.advance(t_ms)
        elif bucket <= self._head - self._size:
            return
        self._slots[bucket % self._size] += value
        self.total += value

    def clear(self) -> None:
        """Forget everything in the window."""
        slots = self._slots
        for i in range(self._size):
            slots[i] = 0
        self.total = 0

    def add_span(self, start_ms: int, end_ms: int) -> None:
        """Add the milliseconds of [start, end), split across the buckets they cover."""
        width = self._bucket_ms
        if start_ms // width == (end_ms - 1) // width:  # the usual case: one bucket
            self.add(start_ms, end_ms - start_ms)
            return
        while start_ms < end_ms:
            edge = (start_ms // width + 1) * width
            stop = edge if edge < end_ms else end_ms
            self.add(start_ms, stop - start_ms)
            start_ms = stop

    def __len__(self) -> int:
        return self._size


class EventWindow:
    """Times of recent events, forgotten after `span_ms`, never more than `capacity`."""

    __slots__ = ("_events", "_span_ms")

    def __init__(self, span_ms: int, capacity: int) -> None:
        self._span_ms = span_ms
        self._events: deque[int] = deque(maxlen=capacity)

    def add(self, t_ms: int) -> None:
        """Record one event at `t_ms`."""
        self._events.append(t_ms)

    def count(self, now_ms: int) -> int:
        """Events within the window ending at `now_ms`."""
        events, oldest = self._events, now_ms - self._span_ms
        while events and events[0] <= oldest:
            events.popleft()
        return len(events)

    def clear(self) -> None:
        """Forget every event (after a prompt has used them as evidence)."""
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)


class ValueWindow:
    """Recent (time, value) samples with a cached median, capped at `capacity`."""

    __slots__ = ("_median", "_samples", "_span_ms")

    def __init__(self, span_ms: int, capacity: int) -> None:
        self._span_ms = span_ms
        self._samples: deque[tuple[int, int]] = deque(maxlen=capacity)
        self._median: float | None = None

    def add(self, t_ms: int, value: int) -> None:
        """Record one sample."""
        self._samples.append((t_ms, value))
        self._median = None

    def count(self, now_ms: int) -> int:
        """Samples within the window ending at `now_ms`."""
        samples, oldest = self._samples, now_ms - self._span_ms
        while samples and samples[0][0] <= oldest:
            samples.popleft()
            self._median = None
        return len(samples)

    def median(self) -> float:
        """Median of the samples kept (call `count` first to expire old ones)."""
        if self._median is None:
            ordered = sorted(value for _, value in self._samples)
            middle = len(ordered) // 2
            if not ordered:
                raise ValueError("median of an empty window")
            if len(ordered) % 2:
                self._median = float(ordered[middle])
            else:
                self._median = (ordered[middle - 1] + ordered[middle]) / 2
        return self._median

    def __len__(self) -> int:
        return len(self._samples)


class Histogram:
    """Counts in fixed-width bins over [low, high); values outside go to the end bins."""

    __slots__ = ("_counts", "_low", "_width", "count")

    def __init__(self, low: int, high: int, width: int) -> None:
        self._low, self._width = low, width
        self._counts = [0] * max(1, -(-(high - low) // width))
        self.count = 0

    def add(self, value: int) -> None:
        """Count one value."""
        index = (value - self._low) // self._width
        last = len(self._counts) - 1
        self._counts[0 if index < 0 else last if index > last else index] += 1
        self.count += 1

    def median(self) -> float:
        """The middle value, read as the centre of its bin."""
        if not self.count:
            raise ValueError("median of an empty histogram")
        half, seen = (self.count + 1) // 2, 0
        for index, bin_count in enumerate(self._counts):
            seen += bin_count
            if seen >= half:
                return self._low + (index + 0.5) * self._width
        raise AssertionError("unreachable: counts add up to count")

    def bins(self) -> list[tuple[int, int, int]]:
        """(low edge, high edge, count) per bin."""
        low, width = self._low, self._width
        return [(low + i * width, low + (i + 1) * width, n) for i, n in enumerate(self._counts)]
