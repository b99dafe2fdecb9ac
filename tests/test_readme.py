"""The README's Python API examples run as written (a newcomer pastes them first)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_python_api_examples_run(capsys):
    blocks = _api_blocks()
    assert len(blocks) >= 2
    scope: dict[str, object] = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), scope)
    lim, cmp = scope["lim"], scope["cmp"]
    assert lim.method in ("exact", "mc") and set(lim.scalars) == set(lim.stderr)  # type: ignore[attr-defined]
    assert cmp is not None and "9/10" in str(scope["opt"].q)  # type: ignore[attr-defined]
