#!/usr/bin/env python3
"""Seeded generator for the `orders` benchmark data set (Python stdlib only).

    python3 bench/gen_orders.py --rows 1000000 --seed 42 --out bench/data/orders_1000000.csv

Same schema and value distributions as the peers' generator in
shared/bench/peers/gen_orders.py (so numbers are comparable), written
independently; the bytes differ from that file's output.  Same --rows and
--seed give the same bytes (random.Random, no clock is read).

Columns (header first, UTF-8, "\\n" line ends, RFC 4180: a field is quoted
only when it holds a comma, a double quote or a line break; quotes doubled):

    id           1..N, in order
    customer_id  1..100000; 20 % of the orders come from customers 1..1000
    order_ts     UTC, ISO 8601 with Z, uniform over 2023-01-01 .. 2024-12-30
    status       pending 10 %, paid 25 %, shipped 20 %, delivered 40 %, cancelled 5 %
    amount       0.50 .. 4999.99, exactly 2 decimals
    quantity     1..20
    note         0..40 chars; 35 % empty; of the rest ~15 % hold a comma,
                 ~10 % double quotes, ~5 % both; some words are non-ASCII
    updated_at   = order_ts for pending orders, else order_ts + 0..30 days
"""
import argparse
import datetime as dt
import os
import random
import sys

HEADER = "id,customer_id,order_ts,status,amount,quantity,note,updated_at\n"
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
STATUS_WEIGHTS = (10, 25, 20, 40, 5)
VOCAB = (
    "please", "deliver", "before", "noon", "gift", "wrap", "fragile", "handle",
    "with", "care", "leave", "at", "door", "call", "on", "arrival", "back",
    "gate", "office", "hours", "only", "rush", "order", "customer", "asked",
    "for", "invoice", "discount", "applied", "promo", "code", "returning",
    "café", "Größe", "naïve", "size", "M", "L", "XL", "blue", "red",
)
START = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
DAYS = 730                      # two 365-day years from START
SPAN = DAYS * 86_400            # seconds
MONTH = 30 * 86_400             # the longest gap between order_ts and updated_at
MAX_NOTE = 40
CHUNK = 20_000                  # rows per write


def _cumulative(weights):
    total, out = 0, []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


STATUS_CUM = _cumulative(STATUS_WEIGHTS)
# "2023-01-01T" ... for every day a timestamp can fall on (order_ts + 30 days included)
DAY_PREFIX = [(START + dt.timedelta(days=d)).strftime("%Y-%m-%dT")
              for d in range((SPAN + MONTH) // 86_400 + 1)]
HMS = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]   # by minute of day
SS = [f"{s:02d}Z" for s in range(60)]


def iso(offset: int) -> str:
    """Seconds since START -> 'YYYY-MM-DDTHH:MM:SSZ'."""
    day, sec = divmod(offset, 86_400)
    minute, s = divmod(sec, 60)
    return DAY_PREFIX[day] + HMS[minute] + SS[s]


def csv_field(text: str) -> str:
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


def note(rng: random.Random) -> str:
    if rng.random() < 0.35:
        return ""
    n = rng.randint(1, 7)
    words = [VOCAB[int(rng.random() * len(VOCAB))] for _ in range(n)]
    kind = rng.random()
    if kind < 0.15:        # a comma between two words
        cut = rng.randint(1, max(1, n - 1))
        text = " ".join(words[:cut]) + ", " + " ".join(words[cut:])
    elif kind < 0.25:      # a quoted phrase
        text = 'said "' + " ".join(words) + '"'
    elif kind < 0.30:      # quotes and commas
        text = '"' + words[0] + '", ' + " ".join(words[1:]) + ", ok"
    else:
        text = " ".join(words)
    if len(text) > MAX_NOTE:
        text = text[:MAX_NOTE].rstrip()
    return text


def status(u: float) -> str:
    for name, edge in zip(STATUSES, STATUS_CUM):
        if u < edge:
            return name
    return STATUSES[-1]


def rows(n: int, seed: int):
    """Yield the CSV text in chunks of CHUNK lines (header first)."""
    rng = random.Random(seed)
    rand, randint = rng.random, rng.randint
    yield HEADER
    lines = []
    for i in range(1, n + 1):
        cust = randint(1, 1_000) if rand() < 0.2 else randint(1, 100_000)
        ts = randint(0, SPAN - 1)
        st = status(rand())
        cents = randint(50, 499_999)
        qty = randint(1, 20)
        text = csv_field(note(rng))
        upd = ts if st == "pending" else ts + randint(0, MONTH)
        lines.append(f"{i},{cust},{iso(ts)},{st},{cents // 100}.{cents % 100:02d},"
                     f"{qty},{text},{iso(upd)}\n")
        if len(lines) == CHUNK:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description="Generate the orders CSV (seeded).")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="-", help="file to write; '-' = stdout")
    a = ap.parse_args()
    if a.rows < 0:
        ap.error("--rows must be >= 0")
    if a.out == "-":
        out = sys.stdout
        out.reconfigure(encoding="utf-8", newline="\n")
        for chunk in rows(a.rows, a.seed):
            out.write(chunk)
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = f"{a.out}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for chunk in rows(a.rows, a.seed):
                f.write(chunk)
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {a.rows} rows to {a.out} ({os.path.getsize(a.out)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
