"""Landing alone ((d) of `end_to_end.py`: drain + marts merge into a fresh DuckDB) for any checkout
of this repository, on one history already published, so two trees can be measured one right
after the other on the same topic. Needs the local stack (`ordertrack stack up`).

    .venv/bin/python bench/drain_compare.py --publish 1000000       # publishes, prints its tag
    .venv/bin/python bench/drain_compare.py --tree /path/to/checkout --tag TAG

The tree is imported first on `sys.path`, as `landing_compare.py` does; the published topics stay
(they are the bench's `bench<tag>.*` topics) until deleted by hand.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path


def publish(rows: int) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    from end_to_end import stage_producer
    from producer_throughput import BASE, bench_config, prepare_source

    from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
    from ordertrack.settings import load_settings

    prepare_source(rows)
    tag = uuid.uuid4().hex[:6]
    KafkaAdmin(load_settings().kafka).ensure_topics(pipeline_topics(bench_config(tag, 10_000)))
    published, _ = stage_producer(tag, 10_000, BASE + rows // 50 + 1)
    print(f"published {published:,} scan events: --tag {tag}")
    return tag


def land(tree: str, tag: str) -> None:
    sys.path.insert(0, tree)
    sys.path.insert(0, f"{tree}/bench")
    import structlog
    from end_to_end import stage_landing  # the tree's own (d)

    import ordertrack

    assert ordertrack.__file__.startswith(str(Path(tree).absolute())), f"measuring {ordertrack.__file__}, not {tree}"
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    warehouse = Path(tempfile.mkdtemp(prefix="bench-drain-compare-")) / "w.duckdb"
    c0 = time.process_time()
    n, seconds, mart = stage_landing(tag, 10_000, str(warehouse))
    cpu = time.process_time() - c0
    print(f"{tree}: landing alone {n:,} rows ({mart:,} in the mart) in {seconds:.2f} s = {n / seconds:,.0f} rows/s "
          f"(CPU {cpu:.2f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publish", type=int, metavar="ROWS")
    ap.add_argument("--tree")
    ap.add_argument("--tag")
    args = ap.parse_args()
    if args.publish:
        publish(args.publish)
    elif args.tree and args.tag:
        land(str(Path(args.tree).absolute()), args.tag)
    else:
        ap.error("give --publish ROWS, or --tree and --tag")


if __name__ == "__main__":
    main()
