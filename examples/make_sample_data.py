"""Write the sample replay data set in examples/data/ (run once; the output is committed).

    python examples/make_sample_data.py [OUT_DIR]

It is the seeded synthetic world (regime-switching, seed 11, 3 symbols, 1,000 ticks of 5 s),
written in the replay format: prices.csv (rows grouped by symbol, not by time, to show that
order does not matter) and narratives.jsonl (one mention a line; the first mention of a
narrative carries the optional headline and source).
Not market data: a small, honest example of the format that `rawe backtest --data` reads.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rawe_cli.feeds.synthetic import SyntheticWorld, WorldParams

SYMBOLS = ("AAPL", "NVDA", "BTC/USD")
TICKS = 1000
SEED = 11


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ticks = list(SyntheticWorld(WorldParams(symbols=SYMBOLS, seed=SEED)).ticks(TICKS))
    bars = sorted((b for t in ticks for b in t.bars), key=lambda b: (b.symbol, b.timestamp))
    with (out / "prices.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["timestamp", "symbol", "open", "high", "low", "close", "volume"])
        for b in bars:
            w.writerow([iso(b.timestamp), b.symbol, f"{b.open:.4f}", f"{b.high:.4f}",
                        f"{b.low:.4f}", f"{b.close:.4f}", int(b.volume)])
    seen: set[str] = set()
    with (out / "narratives.jsonl").open("w", encoding="utf-8") as fh:
        for t in ticks:
            for e in t.events:
                row: dict[str, object] = {
                    "timestamp": iso(e.timestamp),
                    "narrative_id": e.narrative_id,
                    "assets": list(e.symbols),
                    "intensity": round(e.intensity, 4),
                    "sentiment": round(e.sentiment, 4),
                }
                if e.narrative_id not in seen:
                    seen.add(e.narrative_id)
                    mood = "upbeat" if e.sentiment > 0 else "gloomy"
                    row["headline"] = f"{mood} chatter about {' and '.join(e.symbols)}"
                    row["source"] = "synthetic"
                fh.write(json.dumps(row) + "\n")
    print(f"wrote {len(bars)} bars and {sum(len(t.events) for t in ticks)} narrative events "
          f"to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data")
