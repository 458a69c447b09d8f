"""Cue engine throughput: feature events per second per core for many concurrent sessions.

1,000 engines (one per session) are fed one pre-generated, interleaved event stream: every
session's frame for second k before any frame of second k+1, as a server process would see
them. The same stream is also fed to no-op consumers in the same run, which gives the floor
(the cost of the loop and the method call). Two measurements:

- engine only: frames already parsed (FeatureFrame), so only the engine's work is timed;
- from the wire: each event is a JSON text, decoded and validated by `parse_features` first,
  as the WebSocket loop must do anyway; the no-op consumer gets the same parsed frames.

Times are CPU time of this process (`time.process_time`), i.e. events per second per core,
and each figure is the best of `--repeats` runs (fresh engines each time): the machine may be
shared, and CPU time and the best run are the least disturbed by other work.

Usage: .venv/bin/python benchmarks/cue_engine.py [--sessions 1000] [--minutes 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.core.cues.engine import CueEngine
from server.core.cues.features import FeatureFrame, parse_features
from server.core.cues.prompts import Prompt
from server.core.cues.synthetic import SCENARIOS, scenario_frames

DISTINCT_STREAMS = 27  # every scenario, three seeds each; sessions reuse them round-robin


class NoOpConsumer:
    """Takes a frame and does nothing: the floor a real engine is measured against."""

    __slots__ = ()

    def feed(self, frame: FeatureFrame) -> list[Prompt]:
        """Return no prompts."""
        return []


def build_events(sessions: int, minutes: float) -> tuple[list[int], list[FeatureFrame]]:
    """Session index and frame per event, interleaved across sessions in time order."""
    streams = [
        list(scenario_frames(SCENARIOS[i % len(SCENARIOS)], minutes=minutes, seed=i))
        for i in range(DISTINCT_STREAMS)
    ]
    length = min(len(stream) for stream in streams)
    owners: list[int] = []
    frames: list[FeatureFrame] = []
    for index in range(length):
        for session in range(sessions):
            owners.append(session)
            frames.append(streams[session % DISTINCT_STREAMS][index])
    return owners, frames


def run_frames(
    consumers: Sequence[CueEngine | NoOpConsumer], owners: list[int], frames: list[FeatureFrame]
) -> tuple[float, int]:
    """Feed every event; return (CPU seconds, prompts raised)."""
    prompts = 0
    gc.collect()
    start = time.process_time()
    for owner, frame in zip(owners, frames, strict=True):
        prompts += len(consumers[owner].feed(frame))
    return time.process_time() - start, prompts


def run_wire(
    consumers: Sequence[CueEngine | NoOpConsumer], owners: list[int], lines: list[str]
) -> float:
    """Decode, validate and feed every event; return CPU seconds."""
    loads, parse = json.loads, parse_features
    gc.collect()
    start = time.process_time()
    for owner, line in zip(owners, lines, strict=True):
        consumers[owner].feed(parse(loads(line)))
    return time.process_time() - start


def report(label: str, events: int, engine_s: float, noop_s: float) -> None:
    """Print events/s for the engine and the floor, and their ratio."""
    engine_rate, noop_rate = events / engine_s, events / noop_s
    print(f"{label}")
    print(f"  engine : {engine_rate:>12,.0f} events/s per core  ({engine_s:.2f} s CPU)")
    print(f"  no-op  : {noop_rate:>12,.0f} events/s per core  ({noop_s:.2f} s CPU)")
    print(f"  ratio  : {engine_rate / noop_rate:.3f} of the no-op floor")


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """The fastest of `repeats` runs (the least disturbed by other work on the machine).

    Engines are created afresh inside each run, so every run does the same work.
    """
    return min(run() for _ in range(repeats))


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wire-events", type=int, default=200_000)
    args = parser.parse_args()

    print(f"date     : {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"platform : {platform.platform()}")
    print(f"python   : {platform.python_implementation()} {platform.python_version()}")
    print(f"cpus     : {os.cpu_count()} (the benchmark uses one)")
    print(f"processor: {platform.processor() or platform.machine()}")
    print(f"load avg : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine)")
    owners, frames = build_events(args.sessions, args.minutes)
    events = len(frames)
    print(f"workload : {args.sessions} sessions x {args.minutes:g} min, {events:,} events\n")

    runs = [
        run_frames([CueEngine() for _ in range(args.sessions)], owners, frames)
        for _ in range(args.repeats)
    ]
    engine_s, prompts = min(runs)
    noop_s = best_of(
        args.repeats, lambda: run_frames([NoOpConsumer()] * args.sessions, owners, frames)[0]
    )
    report("engine only (pre-parsed frames)", events, engine_s, noop_s)
    print(f"  prompts raised: {prompts:,}\n")

    wire = min(args.wire_events, events)
    lines = [json.dumps(frame.to_message()) for frame in frames[:wire]]
    wire_owners = owners[:wire]
    wire_engine_s = best_of(
        args.repeats,
        lambda: run_wire([CueEngine() for _ in range(args.sessions)], wire_owners, lines),
    )
    wire_noop_s = best_of(
        args.repeats, lambda: run_wire([NoOpConsumer()] * args.sessions, wire_owners, lines)
    )
    report(
        "from the wire (json.loads + parse_features + consumer)", wire, wire_engine_s, wire_noop_s
    )


if __name__ == "__main__":
    main()
