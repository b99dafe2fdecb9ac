"""One progress reporter for long runs, on stderr.

On a terminal a bar redrawn at most four times a second after the first second (a redraw per
instruction was ~500 a second and 330 KB of output in a 7 s run); elsewhere (a log, CI) one line
every ten seconds. The time left is estimated from the work done so far.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from compiler.ir import Instruction

_REDRAW = 0.25  # seconds between terminal redraws
_LOG_EVERY = 10.0  # seconds between lines in a log
_QUIET_START = 1.0  # runs shorter than this show nothing


def duration(seconds: float) -> str:
    """A duration for a reader: 42 s, 17 min, 3.5 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class Progress:
    """``progress(done, total, label)``: the limit engines' signature; ``progress.instruction``
    is the executor's ``(k, total, ins)``."""

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.what = what
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.last = -float("inf")
        self.shown = False

    def _due(self, now: float) -> bool:
        gap = _REDRAW if self.tty else _LOG_EVERY
        return now >= _QUIET_START and now - self.last >= gap

    def __call__(self, done: float, total: float, label: str) -> None:
        now = time.monotonic() - self.start
        if not self._due(now) or total <= 0:
            return
        frac = min(1.0, done / total)
        left = f", ~{duration(now * (1 - frac) / frac)} left" if frac > 0 else ""
        text = f"{self.what}: {100 * frac:5.1f}% ({duration(now)} elapsed{left}) {label[:40]}"
        if self.tty:
            bar = "#" * int(20 * frac)
            print(f"\r[{bar:<20}] {text:<90}", end="", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)
        self.shown, self.last = True, now

    def instruction(self, k: int, total: int, ins: Instruction) -> None:
        """The executor's callback: instruction ``k`` of ``total`` is being run."""
        if self._due(time.monotonic() - self.start):  # format only what will be shown
            self(k + 1, total, format_instruction(ins))

    def done(self) -> None:
        """Clear the bar (a log keeps its lines)."""
        if self.shown and self.tty:
            print("\r" + " " * 115 + "\r", end="", file=self.stream, flush=True)


def format_instruction(ins: Instruction) -> str:
    """:func:`compiler.printer.format_instruction`, imported when first needed (the printer
    imports sympy, which registering the commands must not)."""
    from compiler.printer import format_instruction as printed

    return printed(ins)
