"""The network link between a site and the server: how long bytes take to cross it.

A deliberately small model, enough to turn the byte counts of :mod:`medseg_kit.split` into
seconds per round: a fixed bandwidth in each direction (Mbit/s, 1 Mbit = 10**6 bits, the
unit link speeds are sold in) plus a latency paid once per message. No congestion, no
packet loss, no protocol overhead: the figures are lower bounds.

Bytes are counted in bytes (shown as KiB/MiB through :mod:`medseg_kit.units`); only the
link speed is in decimal megabits, because that is how a link is labelled.

Example:
    >>> link = Link(up_mbps=20, down_mbps=100, latency_ms=10)
    >>> round(link.seconds(bytes_up=2_500_000, bytes_down=2_500_000, messages=4), 3)
    1.24
"""

from __future__ import annotations

from dataclasses import dataclass

BITS_PER_MBIT = 1_000_000


@dataclass(frozen=True)
class Link:
    """A site's connection to the server.

    Args:
        up_mbps: site -> server bandwidth in Mbit/s (10**6 bits per second); > 0.
        down_mbps: server -> site bandwidth in Mbit/s; > 0.
        latency_ms: one-way delay paid once per message, in milliseconds; >= 0.

    Raises:
        ValueError: for a bandwidth that is not positive or a negative latency.
    """

    up_mbps: float
    down_mbps: float
    latency_ms: float = 0.0

    def __post_init__(self):
        for name in ("up_mbps", "down_mbps"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"{name}={v!r}: a link bandwidth must be > 0 Mbit/s")
        if not self.latency_ms >= 0:
            raise ValueError(f"latency_ms={self.latency_ms!r}: expected >= 0 milliseconds")

    def seconds_up(self, nbytes: float) -> float:
        """Seconds to send ``nbytes`` from the site to the server (no latency)."""
        return 8.0 * nbytes / (self.up_mbps * BITS_PER_MBIT)

    def seconds_down(self, nbytes: float) -> float:
        """Seconds to send ``nbytes`` from the server to the site (no latency)."""
        return 8.0 * nbytes / (self.down_mbps * BITS_PER_MBIT)

    def seconds(self, bytes_up: float, bytes_down: float, messages: int = 0) -> float:
        """Seconds on the wire for ``bytes_up`` and ``bytes_down``, sent one after the
        other, plus ``messages`` one-way latencies.

        Args:
            bytes_up: bytes from the site to the server.
            bytes_down: bytes from the server to the site.
            messages: number of messages exchanged (each pays ``latency_ms`` once).

        Raises:
            ValueError: for negative bytes or messages.
        """
        if bytes_up < 0 or bytes_down < 0 or messages < 0:
            raise ValueError(f"bytes_up={bytes_up}, bytes_down={bytes_down}, "
                             f"messages={messages}: expected non-negative values")
        return (self.seconds_up(bytes_up) + self.seconds_down(bytes_down)
                + messages * self.latency_ms / 1000.0)


__all__ = ["BITS_PER_MBIT", "Link"]
