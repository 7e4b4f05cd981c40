"""One unit system for the whole course: bytes in binary multiples (KiB, MiB, GiB).

1 KiB = 1,024 bytes, 1 MiB = 1,024 KiB. Every table, figure and notebook prints bytes
through :func:`format_bytes` or divides by :data:`KIB` / :data:`MIB`.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3


def format_bytes(n: float, digits: int = 1) -> str:
    """``n`` bytes as a short string in the largest binary unit that keeps it >= 1.

    Example:
        >>> format_bytes(786_432)
        '768.0 KiB'
    """
    n = float(n)
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(n) >= size:
            return f"{n / size:.{digits}f} {unit}"
    return f"{n:.0f} B"
