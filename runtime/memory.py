"""One memory guard: refuse, before allocating, a run that would not fit in physical memory.

The finite-width executor (n×n matrices) and the Monte Carlo limit engine (particle arrays) both
ask here; a run that would swap for hours is refused at once with the size it needs.
"""

from __future__ import annotations

import os

from compiler.errors import UsageError


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need: int, what: str, advice: str, fraction: float = 0.8) -> None:
    """Refuse ``need`` bytes (described by ``what``) above ``fraction`` of physical memory."""
    have = physical_memory()
    if have is None or need <= fraction * have:
        return
    raise UsageError(
        f"{what} = {need / 2**30:.1f} GiB, more than {fraction:.0%} of this machine's "
        f"{have / 2**30:.1f} GiB; {advice}"
    )
