"""Training-time benchmark at production scale on synthetic data: ``python -m models.benchmark``.

Times ``content_neighbors`` on 100,000 mixed Chinese/English titles and ``behaviour_neighbors`` on
1,000,000 events over 100,000 items (then ``blend`` and ``popular_items`` on the results), and prints one
line per step with the peak memory of the process. The numbers in docs/evaluation.md come from here.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from models.similarity import behaviour_neighbors, blend, content_neighbors, popular_items
from models.synthetic import synthetic_events, synthetic_titles


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class _Timer:
    """Wall and CPU time (all threads) of a step: on a shared machine the CPU time is the steadier number."""

    def __enter__(self) -> _Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def line(self, label: str) -> str:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return f"{label:<20}{wall:7.1f} s wall {cpu:7.1f} s cpu   peak {_peak_mb():,.0f} MB"

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; {args.items:,} items, {args.events:,} events, k={args.k}")

    titles = synthetic_titles(args.items)
    with _Timer() as timer:
        content = content_neighbors(titles, args.k)
    print(timer.line("content_neighbors"), flush=True)

    visitors, items, ts, weights = synthetic_events(args.events, args.items)
    with _Timer() as timer:
        nb, sc, support = behaviour_neighbors(visitors, items, ts, weights, args.items, args.k)
    print(timer.line("behaviour_neighbors"), flush=True)

    with _Timer() as timer:
        blend(content, (nb, sc), support, args.k)
        popular_items(items, ts, weights, args.items)
    print(timer.line("blend + popular"), flush=True)


if __name__ == "__main__":
    main()
