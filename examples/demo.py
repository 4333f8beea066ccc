"""`make demo`: the whole job end to end on this machine, with a short summary.

Steps: build the demo bundle, verify it, generate a demo stream, score it
through the research path. Run with `python -m examples.demo`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "out" / "demo"
CLI = str(Path(sys.executable).parent / "scoring-worker")


def step(title: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    print(f"==> {title}", flush=True)
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"demo step failed ({title}), exit {result.returncode}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--drift", action="append", default=[], help="e.g. bill_length_mm=+6")
    parser.add_argument("--poison-rate", type=float, default=0.01)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    bundle = OUT / "bundle"
    penguins = REPO / "examples" / "penguins"
    built = step(
        "build the demo bundle",
        [CLI, "bundle", "build", "--config", str(penguins / "config.toml"),
         "--data", str(penguins / "penguins.csv"), "--out", str(bundle)],
    )  # fmt: skip
    print(built.stdout, end="")
    print(step("verify it", [CLI, "bundle", "verify", str(bundle)]).stdout, end="")
    events = OUT / "events.jsonl"
    drift = [item for d in args.drift for item in ("--drift", d)]
    step(
        f"generate {args.events} demo events",
        [sys.executable, "-m", "examples.stream", "--events", str(args.events),
         "--poison-rate", str(args.poison_rate), "--output", str(events), *drift],
    )  # fmt: skip
    scored = step(
        "score them through the research path",
        [CLI, "score", "--bundle", str(bundle), "--input", str(events),
         "--output", str(OUT / "research.jsonl"), "--rejects", str(OUT / "rejects.jsonl")],
    )  # fmt: skip
    print("\nsummary")
    print(f"  research path: {scored.stderr.strip().splitlines()[-1]}")
    print(f"  outputs in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
