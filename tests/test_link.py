"""The link model turns bytes into seconds: bandwidth in Mbit/s each way plus latency."""

import pytest

from medseg_kit.link import Link


def test_seconds_are_bits_over_bandwidth_plus_latency():
    link = Link(up_mbps=8, down_mbps=80, latency_ms=5)
    # 1,000,000 bytes = 8,000,000 bits: 1 s at 8 Mbit/s up, 0.1 s at 80 Mbit/s down
    assert link.seconds_up(1_000_000) == pytest.approx(1.0)
    assert link.seconds_down(1_000_000) == pytest.approx(0.1)
    assert link.seconds(1_000_000, 1_000_000) == pytest.approx(1.1)
    assert link.seconds(1_000_000, 1_000_000, messages=4) == pytest.approx(1.12)
    assert link.seconds(0, 0) == 0.0


def test_time_scales_with_bytes_and_inversely_with_speed():
    slow, fast = Link(10, 10), Link(20, 20)
    assert slow.seconds(3 * 2**20, 2**20) == pytest.approx(2 * fast.seconds(3 * 2**20, 2**20))
    assert slow.seconds(2 * 2**20, 0) == pytest.approx(2 * slow.seconds(2**20, 0))


@pytest.mark.parametrize("kw", [dict(up_mbps=0, down_mbps=1), dict(up_mbps=1, down_mbps=-2),
                                dict(up_mbps=1, down_mbps=1, latency_ms=-1)])
def test_bad_links_are_refused_with_the_value(kw):
    with pytest.raises(ValueError, match=r"=(0|-2|-1)"):
        Link(**kw)


def test_negative_traffic_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        Link(1, 1).seconds(-1, 0)
