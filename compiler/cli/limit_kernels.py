"""``nexort limit-scalars FILE --kernels --inputs DATA``: the NNGP and NTK between the inputs
(spec 05 §5.1–5.2) as matrices a user can load.

The kernels come from :func:`runtime.limits.kernels.kernel_limits` (the batched recursion where
the architecture allows it, else the kernel program through the limit engines).  ``--json``
gives ``"nngp"`` and ``"ntk"`` as B×B matrices, ``"blocks"`` the NTK block of every parameter
group (the NTK is their sum), and ``"stderr"`` the standard errors of the NNGP and NTK entries
(0 where exact, null where unknown) under those same two names.  ``--out K.npz`` writes
``nngp``, ``ntk``, ``ntk_<group>`` for every group, their standard errors ``nngp_stderr`` and
``ntk_stderr``, and the inputs ``X``.  ``--compare-widths`` runs the kernel program at finite
widths and reports the same matrices per width.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from compiler.cli.common import Report, exact_number, parse_assignments
from compiler.cli.progress import Progress
from compiler.errors import UsageError


def kernel_report(args: argparse.Namespace, program: Any, x: Any, n_train: int) -> Report:
    """The kernels of ``program`` between the rows of ``x``, as a report (JSON and text)."""
    from runtime.limits import LimitOptions
    from runtime.limits.kernels import kernel_limits

    if x is None:
        raise UsageError("--kernels needs --inputs (the kernel is between inputs)")
    budget = int(args.memory_limit * 2**30) if args.memory_limit else None
    opts = LimitOptions(particles=args.particles, replicas=args.replicas, seed=args.seed,
                        stein=args.stein, outer2_pool=args.outer2_pool, memory_budget=budget)
    progress = Progress("kernels")
    start = time.perf_counter()
    try:
        k = kernel_limits(program, x, args.output, args.method, opts, progress=progress,
                          scalars=parse_assignments(args.scalar, "--scalar", exact_number,
                                                    "a number"))
    finally:
        progress.done()
    seconds = time.perf_counter() - start
    notes = list(k.notes)
    if k.engine == "exact" and args.particles is not None and k.path == "batched":
        notes.append("particles are ignored on the exact path (method mc uses them)")
    doc: dict[str, Any] = {
        "arch": f"{program.name}_kernels", "engine": k.engine, "description": k.description,
        "path": k.path, "note": "; ".join(notes), "seconds": seconds,
        "inputs": list(program.input_names), "batch": len(k.nngp),
        "nngp": k.nngp.tolist(), "ntk": k.ntk.tolist(),
        "blocks": {g: b.tolist() for g, b in k.groups.items()},
        "stderr": {"nngp": _json_matrix(k.nngp_stderr), "ntk": _json_matrix(k.ntk_stderr)},
        "compare": None,
    }
    if args.compare_widths:
        doc["compare"] = _compare(args, program, x)
    if args.out:
        _write_npz(args.out, k, x)
        doc["out"] = args.out
    if args.plot and doc["compare"] is not None:
        _plot(args.plot, program.name, k, doc["compare"])
        doc["plot"] = args.plot
    return Report(doc, _text(doc, n_train))


def _json_matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if np.isfinite(v) else None for v in row] for row in m]


def _write_npz(path: str, k: Any, x: Any) -> None:
    arrays = {"nngp": k.nngp, "ntk": k.ntk, "nngp_stderr": k.nngp_stderr,
              "ntk_stderr": k.ntk_stderr, "X": np.asarray(x, dtype=np.float64)}
    arrays.update({f"ntk_{g}": b for g, b in k.groups.items()})
    np.savez(path, **arrays)


def _compare(args: argparse.Namespace, program: Any, x: Any) -> dict[str, Any]:
    """Seed-averaged finite-width kernels: per width, ``nngp`` and ``ntk`` as {mean, stderr}."""
    from compiler.passes.kernel_program import kernel_program
    from runtime.limits import compare_widths

    kp = kernel_program(program, len(x), args.output)
    cmp = compare_widths(kp.program, kp.bind(x), args.compare_widths, args.seeds).as_json()
    out: dict[str, Any] = {}
    for n, per in cmp.items():
        out[n] = {kind: {part: _entries(len(x), table, per, part) for part in ("mean", "stderr")}
                  for kind, table in (("nngp", kp.nngp), ("ntk", kp.ntk))}
    return out


def _entries(batch: int, table: dict[tuple[int, int], str], per: dict[str, Any],
             part: str) -> list[list[float]]:
    m = np.zeros((batch, batch))
    for (i, j), name in table.items():
        m[i, j] = m[j, i] = per[name][part][0]
    return m.tolist()


def _plot(path: str, arch: str, k: Any, cmp: dict[str, Any]) -> None:
    """The Master-Theorem plot of the upper-triangle entries (names nngp[i][j], ntk[i][j])."""
    from runtime.plots import plot_master_theorem

    iu, ju = np.triu_indices(len(k.nngp))
    limits, per_width = {}, {}
    for kind, m in (("nngp", k.nngp), ("ntk", k.ntk)):
        for i, j in zip(iu, ju, strict=True):
            limits[f"{kind}[{i}][{j}]"] = [float(m[i, j])]
    for n, c in cmp.items():
        per_width[n] = {
            f"{kind}[{i}][{j}]": {"mean": [c[kind]["mean"][i][j]],
                                  "stderr": [c[kind]["stderr"][i][j]]}
            for kind in ("nngp", "ntk") for i, j in zip(iu, ju, strict=True)
        }
    plot_master_theorem(arch, limits, per_width, path)


def _text(doc: dict[str, Any], n_train: int) -> str:
    b = doc["batch"]
    lines = [f"kernels of {doc['arch'][: -len('_kernels')]} between {b} inputs: "
             f"{doc['description']} ({doc['seconds']:.2f} s)"]
    if doc["note"]:
        lines.append(f"note: {doc['note']}")
    with np.printoptions(precision=6, suppress=True, linewidth=100, threshold=400):
        for kind in ("nngp", "ntk"):
            lines.append(f"{kind.upper()} ({b}×{b}):")
            lines.append(str(np.array(doc[kind])))
            se = np.array(doc["stderr"][kind], dtype=float)
            if doc["engine"] != "exact":
                lines.append(f"  largest s.e. {np.nanmax(se):.2e}")
    lines.append(f"NTK blocks by parameter group (the NTK is their sum): "
                 f"{', '.join(doc['blocks'])} (in --json and --out)")
    for n, c in (doc["compare"] or {}).items():
        for kind in ("nngp", "ntk"):
            gap = np.max(np.abs(np.array(c[kind]["mean"]) - np.array(doc[kind])))
            lines.append(f"n={n}: largest |finite − limit| of the {kind.upper()} {gap:.2e}")
    if n_train > 1:
        lines.append(f"inputs 0..{n_train - 1} are training rows; later rows are test rows")
    if doc.get("out"):
        lines.append(f"written: {doc['out']} (numpy .npz: nngp, ntk, ntk_<group>, stderr, X)")
    if doc.get("plot"):
        lines.append(f"plot: {doc['plot']}")
    return "\n".join(lines) + "\n"
