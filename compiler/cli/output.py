"""The one output convention of every command, and the one error renderer.

``--json`` alone prints the JSON document on stdout; ``--json PATH`` writes it to PATH and the
text report still goes to stdout; ``--plot PATH`` writes a PNG. Output paths are checked before
the command computes anything. Every document starts with ``"ok": true`` and ``"command"``; an
error under ``--json`` is ``{"ok": false, "command": …, "error": {"kind", "message", "file",
"line", "column"}}`` (on stdout, or in PATH), while stderr gets the rendered message:
``FILE:LINE:COL: error: MESSAGE`` with the source line and a caret when the error is located.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from compiler.cli.common import Report
from compiler.cli.options import JSON_STDOUT
from compiler.errors import NexortError, UsageError


def check_output_path(path: str, option: str, suffix: str | None = None) -> None:
    """Refuse, before computing, an output file that could not be written."""
    target = Path(path)
    if target.is_dir() or path.endswith(os.sep):
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    if suffix is not None and target.suffix.lower() != suffix:
        raise UsageError(f"{option} {path}: the file name must end in {suffix}")
    parent = target.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: no such directory {str(parent)!r}")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")


def check_json_path(target: str) -> None:
    """Refuse a ``--json PATH`` that cannot be written or would overwrite an architecture."""
    if target.endswith(".nx"):  # `--json FILE.nx` before the file: the file itself
        raise UsageError(f"--json {target}: will not overwrite an architecture file "
                         "(write --json PATH after the file, or --json last for stdout)")
    check_output_path(target, "--json")


def check_outputs(json_target: str | None, plot: str | None) -> None:
    """The paths of ``--json PATH`` and ``--plot PATH``, before the command runs."""
    if json_target is not None and json_target != JSON_STDOUT:
        check_json_path(json_target)
    if plot is not None:
        check_output_path(plot, "--plot", ".png")


def emit(report: Report, name: str, json_target: str | None) -> None:
    """Print or write a command's report by the output convention."""
    if json_target is None:
        print(report.text, end="" if report.text.endswith("\n") else "\n")
        return
    doc = {"ok": True, "command": name, **report.json_doc()}
    _write_json(doc, json_target)
    if json_target != JSON_STDOUT:
        print(report.text, end="" if report.text.endswith("\n") else "\n")


def render_error(e: NexortError) -> str:
    """A user error for a reader, quoting the source line of a located error."""
    if e.source is None and e.loc is not None and os.path.isfile(str(e.loc.file)):
        e.source = _read_quietly(str(e.loc.file))
    return e.render()


def error_doc(name: str | None, e: BaseException) -> dict[str, Any]:
    """The JSON document of a failed command."""
    err: dict[str, Any] = {"kind": type(e).__name__, "message": str(e)}
    if isinstance(e, NexortError):
        err["message"] = e.message
        loc = e.loc
        err |= {"file": None, "line": None, "column": None}
        if loc is not None:
            err |= {"file": str(loc.file), "line": loc.line, "column": loc.column}
    return {"ok": False, "command": name, "error": err}


def emit_error(doc: dict[str, Any], json_target: str | None) -> None:
    """The error document under ``--json`` (to PATH only when PATH itself is not at fault)."""
    if json_target is None:
        return
    if json_target != JSON_STDOUT:
        try:
            check_json_path(json_target)
        except UsageError:
            json_target = JSON_STDOUT
    _write_json(doc, json_target)


def _write_json(doc: dict[str, Any], target: str) -> None:
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    if target == JSON_STDOUT:
        print(text)
        return
    Path(target).write_text(text + "\n", encoding="utf-8")


def _read_quietly(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def json_target_in(argv: list[str]) -> str | None:
    """Where ``--json`` asked for the document, read from raw arguments (when parsing failed)."""
    for k, arg in enumerate(argv):
        if arg == "--json":
            nxt = argv[k + 1] if k + 1 < len(argv) else ""
            return nxt if nxt.endswith(".json") else JSON_STDOUT
        if arg.startswith("--json="):
            return arg.partition("=")[2] or JSON_STDOUT
    return None


def stderr_line(text: str) -> None:
    print(text, file=sys.stderr)
