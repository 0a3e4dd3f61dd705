#!/usr/bin/env python3
"""Seeded generator of a large dbt project, for parse/compile benchmarks (stdlib only).

    python3 bench/gen_dbt_models.py --models 10000 --seed 42 --out bench/out/transform/models_10000

Writes a dbt project named `big` (profile `big`):

    dbt_project.yml   vars `threshold` and `factor`; every folder `+materialized: view`,
                      folder g00 `+materialized: table`
    profiles.yml      target `dev` = `type: sluice` (the lake), target `duckdb` = dbt-duckdb
                      (path from DBT_DUCKDB_PATH)
    macros/big.sql    `scaled(col, factor)` and `positive(col)`
    models/gNN/m_NNNNN.sql
                      1000 models per folder. The first 10 select literals; every
                      later one refs 1-3 earlier models (half of them among the
                      200 just before it, the rest anywhere before it), joined on
                      `id`. Every 5th model calls `scaled`, every 7th filters on
                      `var('threshold')`, every 11th uses a `{% for %}` loop,
                      every 50th sets `{{ config(materialized='table') }}`.
    models/gNN/schema.yml
                      a description and `unique` + `not_null` on `id` for every
                      --tests-every'th model (default 10: 1000 models, 2000 tests)

Same --models and --seed give the same files (random.Random, no clock read).
The SQL is valid on DuckDB and DataFusion; the data it would make is tiny (the
point is parsing, rendering and ordering 10k nodes, not running them).
"""
import argparse
import os
import random
import shutil
import sys

PER_FOLDER = 1000


def name(i: int) -> str:
    return f"m_{i:05d}"


def model_sql(i: int, rnd: random.Random) -> str:
    if i < 10:
        return f"select {i} as id, {i * 3 + 1} as v\n"
    k = rnd.choice((1, 1, 2, 2, 2, 3))
    parents = []
    while len(parents) < k:
        lo = max(0, i - 200) if rnd.random() < 0.5 else 0
        p = rnd.randrange(lo, i)
        if p not in parents:
            parents.append(p)
    lines = []
    if i % 50 == 0:
        lines.append("{{ config(materialized='table') }}")
    lines.append(f"-- model {i}: refs {', '.join(name(p) for p in parents)}")
    sum_v = " + ".join(f"r{j}.v" for j in range(k))
    cols = ["r0.id", f"{sum_v} as v"]
    if i % 5 == 0:
        cols.append("{{ scaled('r0.v', var('factor')) }} as v_scaled")
    if i % 11 == 0:
        cols.append(
            "{% for n in [1, 2, 3] %}r0.v * {{ n }} as v_x{{ n }}{% if not loop.last %}, {% endif %}{% endfor %}"
        )
    lines.append("select")
    lines.append("    " + ",\n    ".join(cols))
    lines.append(f"from {{{{ ref('{name(parents[0])}') }}}} as r0")
    for j, p in enumerate(parents[1:], start=1):
        lines.append(f"join {{{{ ref('{name(p)}') }}}} as r{j} on r{j}.id = r0.id")
    if i % 7 == 0:
        lines.append("where {{ positive('r0.v') }} and r0.v > {{ var('threshold') }}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tests-every", type=int, default=10, help="0: no tests")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.models < 1:
        ap.error("--models must be at least 1")
    rnd = random.Random(a.seed)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(os.path.join(a.out, "macros"))
    folders = (a.models + PER_FOLDER - 1) // PER_FOLDER
    with open(os.path.join(a.out, "dbt_project.yml"), "w") as f:
        f.write(
            "name: big\n"
            'version: "1.0.0"\n'
            "config-version: 2\n"
            "profile: big\n"
            "vars:\n"
            "  threshold: 5\n"
            "  factor: 3\n"
            "models:\n"
            "  big:\n"
            "    +materialized: view\n"
            "    g00:\n"
            "      +materialized: table\n"
        )
    with open(os.path.join(a.out, "profiles.yml"), "w") as f:
        f.write(
            "big:\n"
            "  target: dev\n"
            "  outputs:\n"
            "    dev: {type: sluice, schema: main, threads: 4}\n"
            "    duckdb:\n"
            "      type: duckdb\n"
            "      path: \"{{ env_var('DBT_DUCKDB_PATH', 'big.duckdb') }}\"\n"
            "      schema: main\n"
            "      threads: 4\n"
        )
    with open(os.path.join(a.out, "macros", "big.sql"), "w") as f:
        f.write(
            "{% macro scaled(col, factor) -%}\n"
            "    ({{ col }} * {{ factor }})\n"
            "{%- endmacro %}\n\n"
            "{% macro positive(col) -%}\n"
            "    {{ col }} >= 0\n"
            "{%- endmacro %}\n"
        )
    tests = 0
    for g in range(folders):
        folder = os.path.join(a.out, "models", f"g{g:02d}")
        os.makedirs(folder)
        props = []
        for i in range(g * PER_FOLDER, min(a.models, (g + 1) * PER_FOLDER)):
            with open(os.path.join(folder, name(i) + ".sql"), "w") as f:
                f.write(model_sql(i, rnd))
            if a.tests_every and i % a.tests_every == 0:
                props.append(
                    f"  - name: {name(i)}\n"
                    f"    description: Generated model {i}.\n"
                    "    columns:\n"
                    "      - name: id\n"
                    "        data_tests: [unique, not_null]\n"
                )
                tests += 2
        if props:
            with open(os.path.join(folder, "schema.yml"), "w") as f:
                f.write("version: 2\n\nmodels:\n" + "".join(props))
    print(f"wrote {a.models} models, {tests} tests in {folders} folder(s) to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
