"""A process that does nothing but sleep 1 ms at a time and note when it woke up late.

    python -m bench._probe --seconds S --out FILE [--threshold 0.01]

Each line of FILE is ``<monotonic time it went to sleep> <how late it woke [s]>`` for wake-ups later
than the threshold. An idle process that wakes up tens of milliseconds late was not scheduled: the
machine (other processes, the hypervisor) stalled, not the daemon. bench/pipeline.py runs it beside
the daemon to tell such stalls apart from the daemon's own latency.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

NAP = 0.001  # [s]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float, default=0.01)
    args = p.parse_args()
    end = time.monotonic() + args.seconds
    with Path(args.out).open("w", encoding="ascii", buffering=1) as out:
        while (start := time.monotonic()) < end:
            time.sleep(NAP)
            late = time.monotonic() - start - NAP
            if late > args.threshold:
                out.write(f"{start:.6f} {late:.6f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
