"""Parse + flatten + verify of transformer_block unrolled over 16 tokens (goal < 1 s).

Run: python bench/bench_parse.py. Prints the median of 5 runs, the program size, and the ratio
to parsing the 3-token sample in the same process (the baseline), with the instruction counts,
so the per-instruction cost can be compared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_seconds
from compiler.frontend.parse import parse_text

ROOT = Path(__file__).resolve().parent.parent
SOURCE = (ROOT / "samples" / "transformer_block.nx").read_text()
COLD = (
    "import time; t = time.perf_counter(); from compiler.frontend.parse import parse_file; "
    "parse_file('samples/transformer_block.nx', consts={'S': 16}); "
    "print(f'{time.perf_counter() - t:.3f}')"
)


def main() -> None:
    parse_text(SOURCE)  # warm the parser cache (grammar compilation is once per process)
    results = {}
    for tokens in (3, 16):
        size = len(parse_text(SOURCE, consts={"S": tokens}).body)
        secs = median_seconds(lambda t=tokens: parse_text(SOURCE, consts={"S": t}))
        results[tokens] = (secs, size)
        print(
            f"transformer_block S={tokens:2d}: {size:5d} instructions, "
            f"parse+flatten+verify {secs:.3f} s ({1e3 * secs / size:.2f} ms/instruction)"
        )
    cold = subprocess.run(
        [sys.executable, "-c", COLD], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    print(f"cold (fresh process, grammar build and sympy caches included): S=16 in {cold} s")
    (b, nb), (s, ns) = results[3], results[16]
    print(
        f"ratio S=16 / S=3: time {s / b:.1f}x for {ns / nb:.1f}x the instructions; "
        f"goal < 1 s: {'met' if s < 1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
