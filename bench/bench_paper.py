"""The paper's two experiments (07 §7.4; samples/paper/README.md) as one run: Fig. 5.1 (NTP,
mlp4, Adam) and Fig. 5.2 (μP, mlp2, Adam), each by ``nexort
converge`` (the limit and the finite-width networks), writing the plots and JSON to OUTDIR
(default: a fresh temporary directory; never into samples/).  Prints per figure the wall time of
the limit and of the networks, in the same process, their ratio, the distances and the fitted
slope ± s.e. (predicted −0.5).

Run: python -m bench.bench_paper [OUTDIR] [--full] [--engine NAME] [--particles M] [--replicas R]
                                  [--widths LIST] [--seeds S] [--steps T] [--only FIG]
Default: widths 128…1024, 4 seeds, T = 5, each limit at its engine's default particles (NT:
65536 in 16 replicas, ~1 min; μ: 4096) (~5 min on 2 cores); ``--full``: the README's commands
(widths 256…8192, 10 seeds, T = 10 — hours); --widths/--seeds/--steps override either size.
A figure whose limit has no engine yet prints the refusal and the run goes on with the other.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
OPT = "adam(0.9, 0.99, 1e-4, lr=0.2)"
FIGURES = {"fig5_1": ("mlp4", "ntp"), "fig5_2": ("mlp2", "mup")}
QUICK = {"widths": "128,256,512,1024", "seeds": "4", "steps": "5"}
FULL = {"widths": "256,512,1024,2048,4096,8192", "seeds": "10", "steps": "10"}
# the limits at their engines' default particles: the NT engine's joint samples of mlp4's
# 104-point total program cost ~25 s per 65536 particles since the hats are conditioned by
# Gram-Schmidt (runtime/limits/hats.py; the former pseudo-inverse took ~3 min per 1024)


def _common(arch: str, param: str, size: dict[str, str], extra: list[str]) -> list[str]:
    return [str(ROOT / "samples" / f"{arch}.nx"), "--param", param, "--opt", OPT, "--loss", "mse",
            "--data", str(ROOT / "samples" / "paper" / "paper.npz"), "--steps", size["steps"],
            "--center", *extra]


def _run(argv: list[str]) -> tuple[int, float, str]:
    """Run nexort in this process: exit code, wall seconds, stderr (the text report is muted)."""
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, time.perf_counter() - start, err.getvalue()


def figure(name: str, out: Path, size: dict[str, str], extra: list[str]) -> None:
    arch, param = FIGURES[name]
    code, wall, err = _run(["converge", *_common(arch, param, size, extra), "--widths",
                            size["widths"], "--seeds", size["seeds"], "--plot",
                            str(out / f"{name}.png"), "--json", str(out / f"{name}.json")])
    if code != 0:
        print(f"{name} ({arch}, {param}): refused: {err.strip().splitlines()[-1]}")
        return
    doc = json.loads((out / f"{name}.json").read_text())
    dist = ", ".join(f"n={n}: {d:.3g}" if d is not None else f"n={n}: —"
                     for n, d in zip(doc["widths"], doc["distance"], strict=True))
    slope, se = doc["slope"], doc["slope_stderr"]
    t_lim, t_fin = doc["seconds"]["limit"], doc["seconds"]["networks"]
    print(f"{name} ({arch}, {param}, engine {doc['limit']['engine']} "
          f"{doc['limit']['method']}, {doc['limit']['particles']} particles): {wall:.1f} s; "
          f"limit {t_lim:.1f} s, networks {t_fin:.1f} s (limit/networks {t_lim / t_fin:.2f})")
    print(f"  D_n {dist}; slope {'—' if slope is None else f'{slope:+.3f}'} ± "
          f"{'—' if se is None else f'{se:.3f}'} (predicted −0.5); plot {out / name}.png")
    for note in doc["notes"]:
        print(f"  note: {note}")


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("outdir", nargs="?", help="where to write (default: a temporary directory)")
    p.add_argument("--full", action="store_true", help="the README's sizes (hours)")
    p.add_argument("--engine", default="auto", help="the limit engine (default auto)")
    p.add_argument("--particles", help="the limits' particles, M or fig5_1=M1,fig5_2=M2 "
                                       "(default: each engine's)")
    p.add_argument("--replicas", help="the limits' replicas, R or fig5_1=R1,fig5_2=R2 "
                                      "(default: each engine's)")
    for key in ("widths", "seeds", "steps"):
        p.add_argument(f"--{key}", help=f"override the size's {key}")
    p.add_argument("--only", choices=sorted(FIGURES), help="one figure")
    args = p.parse_args(argv)
    out = Path(args.outdir) if args.outdir else Path(tempfile.mkdtemp(prefix="nexort-paper-"))
    out.mkdir(parents=True, exist_ok=True)
    size = dict(FULL if args.full else QUICK)
    size.update({k: getattr(args, k) for k in ("widths", "seeds", "steps") if getattr(args, k)})
    print(f"paper experiments ({'full' if args.full else 'quick'} sizes: widths {size['widths']}, "
          f"{size['seeds']} seeds, T = {size['steps']}) → {out}")
    for name in ([args.only] if args.only else FIGURES):
        extra = ["--engine", args.engine]
        for key in ("particles", "replicas"):
            value = per_figure(getattr(args, key), name)
            extra += [f"--{key}", value] if value else []
        figure(name, out, size, extra)


def per_figure(value: str | None, name: str) -> str | None:
    """``M`` for every figure, or ``fig5_1=M1,fig5_2=M2`` (a figure not named: its engine's
    default), e.g. many particles for the NT limit (linear in M) and fewer for the μ limit
    (quadratic under Adam)."""
    if value is None or "=" not in value:
        return value
    pairs = dict(item.split("=", 1) for item in value.split(","))
    return pairs.get(name)


if __name__ == "__main__":
    run()
