"""The public face: ``import medseg_kit as mk`` is light and exposes the API."""

import subprocess
import sys

import pytest

import medseg_kit as mk

API = ["History", "RunConfig", "Split", "compare", "create_model", "list_datasets",
       "list_models", "load_dataset", "model_info", "train"]


def test_import_is_light_and_loads_names_on_use():
    code = ("import sys, medseg_kit as mk; heavy = [m for m in ('torch', 'numpy', "
            "'matplotlib') if m in sys.modules]; assert not heavy, heavy; "
            "mk.list_models(); assert 'torch' in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_the_api_names():
    assert sorted(set(mk.__all__) - {"__version__"}) == API
    assert set(API) <= set(dir(mk))
    from medseg_kit.comparison import run_matrix
    from medseg_kit.federated import RunConfig, train

    assert mk.compare is run_matrix and mk.train is train and mk.RunConfig is RunConfig
    assert "unet" in mk.list_models() and mk.list_datasets() == ["blastocyst", "ham10000",
                                                                 "kvasir"]
    net = mk.create_model("unet", width=4)
    assert mk.Split(net, *net.default_cut).front == net.default_cut[0]
    assert mk.viz.__name__ == "medseg_kit.viz"  # submodules load lazily too


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="nonexistent"):
        mk.nonexistent  # noqa: B018
