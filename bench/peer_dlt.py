#!/usr/bin/env python3
"""dlt's fast path for the benchmark: orders CSV -> local parquet files.

    peer_dlt.py --csv FILE --out DIR

dlt's `filesystem` source + `read_csv_duckdb` reader (Arrow batches of 100k
rows, `amount` as DECIMAL(12,2)) into a `filesystem` destination with parquet
load files: the same route as `dlt_csv.py --dest filesystem --mode arrow` in
shared/bench/peers (the "dlt arrow path").  Run with the peers venv's python.
Writes DIR/fs/bench/orders/*.parquet; counting is left to the caller.
"""
import argparse
import os
import sys

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

import dlt  # noqa: E402
from dlt.sources.filesystem import filesystem, read_csv_duckdb  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    folder, name = os.path.split(os.path.abspath(a.csv))
    files = filesystem(bucket_url="file://" + folder, file_glob=name)
    orders = (files | read_csv_duckdb(chunk_size=100_000, use_pyarrow=True,
                                      dtype={"amount": "DECIMAL(12,2)"})).with_name("orders")
    orders.apply_hints(write_disposition="replace")
    out = os.path.abspath(a.out)
    pipe = dlt.pipeline(
        pipeline_name="sluice_bench_dlt",
        pipelines_dir=os.path.join(out, "pipelines"),
        destination=dlt.destinations.filesystem(bucket_url="file://" + os.path.join(out, "fs")),
        dataset_name="bench",
    )
    print(pipe.run(orders, loader_file_format="parquet"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
