"""medseg_kit.communication: its tables are traffic.py's exact numbers, rearranged; its
figures build; the break-even it draws is where the bytes cross."""

import math
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest

from medseg_kit import communication as comm
from medseg_kit.federated import GLOBAL, RunConfig, train
from medseg_kit.link import Link
from medseg_kit.models import create_model
from medseg_kit.split import Split
from medseg_kit.traffic import (
    break_even_images,
    messages_per_round,
    price_cuts,
    price_round,
    site_round_bytes,
    state_bytes,
)
from medseg_kit.wire import KINDS, Wire

from .synthetic import discs as disc_data

NET = create_model("unet", width=4)
SIZE = 32
TRAIN = dict(batch_size=4, bn_calibration=4)
LINK = Link(up_mbps=20, down_mbps=100, latency_ms=10)


def total(strategy, n, cut=None, wire=None):
    split = Split(NET, *(cut or NET.default_cut))
    b = site_round_bytes(strategy, NET, SIZE, n, split=split, wire=wire, **TRAIN)
    return b["up"] + b["down"]


def test_round_cost_is_traffics_price_round():
    got = comm.round_cost("sflv2", NET, SIZE, 13, LINK, split=Split(NET, 2, 7), **TRAIN)
    want = price_round(NET, (2, 7), SIZE, LINK, images_per_site=13, **TRAIN)
    assert (got["bytes_up"], got["bytes_down"], got["messages"]) == (
        want["bytes_round_up"], want["bytes_round_down"], want["messages"])
    assert got["bytes"] == got["bytes_up"] + got["bytes_down"]
    assert got["seconds"] == pytest.approx(want["seconds_per_round"])
    fl = comm.round_cost("fl", NET, SIZE, 13, LINK, **TRAIN)
    assert fl["bytes_up"] == fl["bytes_down"] == state_bytes(NET, Wire(), "up")
    assert fl["messages"] == 2 and "seconds" not in comm.round_cost("fl", NET, SIZE, 13)
    with pytest.raises(TypeError, match="batch_sizes"):
        comm.round_cost("fl", NET, SIZE, 13, batch_sizes=4)


@pytest.mark.parametrize("split_kind", ["ushaped", "vanilla"])
def test_by_kind_adds_up_to_the_round(split_kind):
    rows = comm.by_kind(NET, SIZE, 10, split_kind=split_kind, **TRAIN)
    assert [r["kind"] for r in rows] == [*KINDS, "total"]
    kinds, last = rows[:-1], rows[-1]
    split = Split(NET, *(NET.default_cut if split_kind == "ushaped" else (1, len(NET))))
    want = site_round_bytes("sflv2", NET, SIZE, 10, split=split, **TRAIN)
    assert (last["bytes_up"], last["bytes_down"]) == (want["up"], want["down"])
    assert sum(r["bytes_up"] for r in kinds) == want["up"]
    assert sum(r["bytes_down"] for r in kinds) == want["down"]
    by = {r["kind"]: r for r in kinds}
    assert by["model"]["bytes_up"] == state_bytes(split.client_part(NET), Wire(), "up")
    assert (by["label"]["bytes_up"] > 0) == (split_kind == "vanilla")
    fl = {r["kind"]: r for r in comm.by_kind(NET, SIZE, 10, strategy="fl", **TRAIN)}
    assert fl["total"]["bytes"] == fl["model"]["bytes"] == 2 * state_bytes(NET, Wire(), "up")


def test_by_cut_is_traffics_price_cuts():
    cuts = [(1, 8), (2, 7), (4, 5)]
    got = comm.by_cut(NET, SIZE, 12, LINK, cuts=cuts, **TRAIN)
    want = price_cuts(NET, SIZE, 12, LINK, cuts=cuts, **TRAIN)
    for g, w in zip(got, want):
        assert g["cut"] == w["cut"]
        assert (g["sflv2_bytes_up"], g["sflv2_bytes_down"]) == (w["sflv2_up"], w["sflv2_down"])
        assert g["fl_bytes"] == w["fl_up"] + w["fl_down"]
        assert g["sflv2_seconds"] == pytest.approx(w["sflv2_seconds"])
        assert g["fl_seconds"] == pytest.approx(w["fl_seconds"])
        assert g["break_even"] == w["break_even"]
        assert g["client_part_bytes"] == state_bytes(Split(NET, *g["cut"]).client_part(NET),
                                                     Wire(), "up")
    assert len(comm.by_cut(NET, SIZE, 12, cuts=None, **TRAIN)) > len(cuts)


def test_deal():
    assert comm.deal(10, 3) == [4, 3, 3] and comm.deal(9, 3) == [3, 3, 3]
    with pytest.raises(ValueError, match="cannot deal"):
        comm.deal(2, 3)


def test_by_sites_sums_the_sites():
    fixed = comm.by_sites(NET, SIZE, [1, 2, 4], LINK, images_per_site=9, **TRAIN)
    for r in fixed:
        k = r["sites"]
        assert r["images_per_site"] == [9] * k
        assert r["sflv2_bytes"] == k * total("sflv2", 9)
        assert r["fl_bytes"] == k * total("fl", 9)
        one = comm.round_cost("sflv2", NET, SIZE, 9, LINK, split=Split(NET, *NET.default_cut),
                              **TRAIN)
        assert r["sflv2_seconds"] == pytest.approx(k * one["seconds"])  # in turn
        assert r["fl_seconds"] == pytest.approx(fixed[0]["fl_seconds"])  # at once
    spread = comm.by_sites(NET, SIZE, [1, 3], total_images=20, **TRAIN)
    assert spread[1]["images_per_site"] == [7, 7, 6]
    assert spread[1]["sflv2_bytes"] == 2 * total("sflv2", 7) + total("sflv2", 6)
    assert spread[1]["fl_bytes"] == 3 * spread[0]["fl_bytes"]
    assert "sflv2_seconds" not in spread[0]
    with pytest.raises(ValueError, match="exactly one"):
        comm.by_sites(NET, SIZE, [2], images_per_site=3, total_images=6)


def test_sites_break_even_is_where_fl_overtakes():
    k = comm.sites_break_even(NET, SIZE, 40, **TRAIN)
    assert k is not None and k > 1
    rows = comm.by_sites(NET, SIZE, range(1, k + 1), total_images=40, **TRAIN)
    assert all(r["fl_bytes"] <= r["sflv2_bytes"] for r in rows[:-1])
    assert rows[-1]["fl_bytes"] > rows[-1]["sflv2_bytes"]
    assert comm.sites_break_even(NET, SIZE, 40, wire=Wire("fp16"), **TRAIN) < k


def test_by_images_and_codec_bytes_are_the_formula():
    for r in comm.by_images(NET, SIZE, [2, 5, 16], LINK, **TRAIN):
        n = r["images_per_site"]
        assert (r["sflv2_bytes"], r["fl_bytes"]) == (total("sflv2", n), total("fl", n))
        split = Split(NET, *NET.default_cut)
        msgs = messages_per_round("sflv2", split, n, **TRAIN)
        assert r["sflv2_messages"] == msgs
    specs = ["none", "fp16", "activation=fp16,gradient=topk:0.1,model=int8"]
    rows = comm.codec_bytes(NET, SIZE, 16, specs, **TRAIN)
    assert [r["codec"] for r in rows] == [Wire(codec=s).codec for s in specs]
    assert rows[0]["ratio"] == 1.0
    for spec, r in zip(specs, rows):
        assert r["sflv2_bytes"] == total("sflv2", 16, wire=Wire(codec=spec))
        assert r["fl_bytes"] == total("fl", 16, wire=Wire(codec=spec))
    assert rows[1]["fl_bytes"] == rows[0]["fl_bytes"]  # fp16 alone leaves the model as is
    assert rows[2]["fl_bytes"] < rows[0]["fl_bytes"] / 3  # model=int8: ~1 byte a value
    assert rows[2]["ratio"] < rows[1]["ratio"] < 1


def test_break_even_is_where_the_bytes_cross():
    case = comm.break_even_case(NET, SIZE, images_per_site=32, **TRAIN)
    n = case["break_even"]
    assert n == break_even_images(NET, SIZE, **TRAIN) and n is not None
    rows = {r["images_per_site"]: r for r in
            comm.by_images(NET, SIZE, [n, n + 1], **TRAIN)}
    assert rows[n]["sflv2_bytes"] <= rows[n]["fl_bytes"] < rows[n + 1]["sflv2_bytes"]
    # the drawn curve crosses there too: cheaper left of it, dearer right of it
    for r in case["rows"]:
        cheaper = r["sflv2_bytes"] <= r["fl_bytes"]
        assert cheaper == (r["images_per_site"] <= n), r
    assert max(r["images_per_site"] for r in case["rows"]) >= max(2 * n, 32)
    assert case["ratio"] == pytest.approx(total("sflv2", 32) / total("fl", 32))
    assert "data-heavy" in comm.regime(case) and f"up to {n} images" in comm.regime(case)
    small = comm.break_even_case(NET, SIZE, images_per_site=2, **TRAIN)
    assert "model-heavy" in comm.regime(small)


def test_meta_models_price_like_real_ones():
    real, meta = create_model("unet", width=8), comm.meta_model("unet", 8)
    assert next(meta.parameters()).is_meta
    assert break_even_images(meta, 64, **TRAIN) == break_even_images(real, 64, **TRAIN)
    rows = comm.break_even_table(["unet", "segnet"], 64, width=None, **TRAIN)
    assert [r["model"] for r in rows] == ["unet", "segnet"]
    assert rows[0]["model_bytes"] == state_bytes(real, Wire(), "up")
    assert rows[0]["break_even"] == break_even_images(real, 64, **TRAIN)
    q = Split(real, *real.default_cut).bytes_per_image(64)
    assert rows[0]["bytes_per_image"] == q["up"] + q["down"]


@pytest.fixture(scope="module")
def codec_runs():
    data = disc_data(n=20)
    out = []
    for codec in ("none", "activation=fp16,gradient=topk:0.1,model=int8"):
        c = RunConfig(model="unet", width=4, size=32, sites=2, rounds=1, batch_size=4,
                      bn_calibration=4, device="cpu", seed=0, codec=codec)
        history, strategy = train(c, data=data, progress=False)
        out.append((SimpleNamespace(config=c, history=history, final=history.final),
                    strategy.run))
    return out


def test_codec_rows_measured_equal_formula(codec_runs):
    runs = [r for r, _ in codec_runs]
    rows = comm.codec_rows(runs, codec_runs[0][1].net)
    assert all(r["exact"] for r in rows), rows
    assert rows[0]["ratio"] == 1.0 and rows[0]["dice_change"] == 0.0
    assert rows[1]["ratio"] < 0.6
    for r, run in zip(rows, runs):
        recs = [x for x in run.history.records if x["site"] != GLOBAL]
        assert r["bytes_up"] == pytest.approx(sum(x["bytes_up"] for x in recs) / len(recs))
        assert (r["bytes_up"], r["bytes_down"]) == (r["formula_up"], r["formula_down"])
        assert r["dice"] == run.final()["dice"]
    no_base = comm.codec_rows(runs[1:], codec_runs[0][1].net)
    assert math.isnan(no_base[0]["ratio"])


def test_measured_by_kind_equals_formula(codec_runs):
    for r, run in codec_runs:
        rows = comm.measured_by_kind(r.history, run)
        assert {x["kind"] for x in rows} >= {"activation", "gradient", "model", "calibration"}
        assert all(x["measured"] == x["formula"] > 0 for x in rows), rows
        assert sum(x["measured"] for x in rows) == run.wire.bytes()


def test_tables_and_figures_build():
    kinds = comm.by_kind(NET, SIZE, 8, **TRAIN)
    text = comm.to_markdown(kinds, {"kind": "kind", "bytes_up": "up", "bytes_down": "down"})
    lines = text.splitlines()
    assert len(lines) == len(kinds) + 2 and "KiB" in text and lines[1] == "|---|---:|---:|"
    cases = [comm.break_even_case(NET, SIZE, images_per_site=24, **TRAIN),
             comm.break_even_case(NET, SIZE, cut=(3, 6), **TRAIN)]
    codecs = comm.codec_bytes(NET, SIZE, 8, ["none", "int8"], LINK, **TRAIN)
    figs = {
        1: [comm.plot_kinds(kinds), comm.plot_codecs(codecs),
            comm.plot_by_cut(comm.by_cut(NET, SIZE, 8, cuts=[(1, 8), (2, 7)], **TRAIN)),
            comm.plot_by_sites(comm.by_sites(NET, SIZE, [1, 2], images_per_site=8, **TRAIN)),
            comm.plot_by_images(cases[0]["rows"], break_even=cases[0]["break_even"])],
        2: [comm.plot_break_even(cases),
            comm.plot_by_cut(comm.by_cut(NET, SIZE, 8, LINK, cuts=[(1, 8)], **TRAIN)),
            comm.plot_by_sites(comm.by_sites(NET, SIZE, [1, 2], LINK, images_per_site=8,
                                             **TRAIN)),
            comm.plot_codecs([{**r, "dice_change": 0.0} for r in codecs])],
    }
    for n, fs in figs.items():
        for f in fs:
            assert isinstance(f, plt.Figure) and len(f.axes) == n
            plt.close(f)
