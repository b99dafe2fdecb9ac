"""User-facing errors: every one carries a location and prints as ``FILE:LINE:COL: error: MSG``.

The command line catches :class:`NexortError` and prints :meth:`NexortError.render` (the message,
the source line and a caret) and exits 1; no Python traceback reaches a user (spec 06 "Errors").
Subclasses name the error class that tests assert on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors are imported by `nexort --help`, which must not import sympy
    from compiler.ir import Loc


class NexortError(Exception):
    """A clean, located error in user input or in a request to the compiler."""

    def __init__(self, message: str, loc: Loc | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.source = source

    def with_source(self, loc: Loc | None, source: str | None) -> NexortError:
        """Fill in a location and source text if the raiser did not know them."""
        if self.loc is None:
            self.loc = loc
        if self.source is None:
            self.source = source
        return self

    def render(self) -> str:
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        if not (self.loc and self.source):
            return head
        lines = self.source.splitlines()
        if not 1 <= self.loc.line <= len(lines):
            return head
        text = lines[self.loc.line - 1].expandtabs(1)
        start = max(self.loc.column - 1, 0)
        end = self.loc.end_column - 1 if self.loc.end_column else start + 1
        caret = " " * start + "^" + "~" * max(end - start - 1, 0)
        return f"{head}\n    {text}\n    {caret}"

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message


class SourceSyntaxError(NexortError):
    """Text that does not match the grammar."""


class NumberError(NexortError):
    """A malformed numeric literal (``1.2.3``, ``1e``, ``3x``)."""


class EncodingError(NexortError):
    """A file that is not UTF-8 text."""


class UndefinedError(NexortError):
    """A name, function or index that is not defined (or not declared in ``mean[…]``)."""


class KindError(NexortError):
    """An object of the wrong kind: a matrix where a vector is needed, ``avg`` of a scalar, …"""


class ArityError(NexortError):
    """A function called with the wrong number of arguments."""


class DuplicateError(NexortError):
    """A name assigned or declared twice (programs are single-assignment)."""


class IndexRangeError(NexortError):
    """An index outside a group's shape, a non-integer index, or a bad loop bound."""


class ProgramError(NexortError):
    """A structurally incomplete program: no ``arch``, no output, several ``arch`` blocks."""


class VerifyError(NexortError):
    """An IR invariant broken by a pass; the message quotes the printed instruction."""


class UsageError(NexortError):
    """A bad command-line request (missing file, bad data shape, unknown option value)."""


class NumericError(NexortError):
    """A NaN or Inf produced by an instruction (finite width) or a ket (limit); names it."""


class NotDifferentiableError(NexortError):
    """A formula whose derivative backpropagation needs is a Dirac delta (step, sign; 02 §2.2)."""


class ParametrizationError(NexortError):
    """A bad abcd-parametrization: unknown parameter or kind in a table, a missing or non-numeric
    exponent, a scalar parameter under NTP (spec 03 §3.3)."""
