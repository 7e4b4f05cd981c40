import pytest
import torch

from medseg_kit.losses import make_loss
from medseg_kit.models import create_model
from medseg_kit.protocol import split_train_step
from medseg_kit.split import CutError, Split, valid_cuts
from medseg_kit.wire import Wire


def unet():
    return create_model("unet", width=4)


def test_default_unet_cut_crossings():
    s = Split(unet(), 1, 8)
    assert s.up == ["enc1"]
    assert s.down == ["dec2"]
    assert s.kept == ["enc1"]  # the first skip never leaves the site
    assert not s.labels_to_server


def test_vanilla_split_sends_labels():
    net = unet()
    s = Split(net, 3, len(net))
    assert s.labels_to_server and s.down == []
    assert any(c.name == "label" for c in s.crossings(32))


@pytest.mark.parametrize("cut", [(0, 5), (5, 5), (6, 3), (1, 11), (-1, 4)])
def test_invalid_cut_names_range_and_stages(cut):
    with pytest.raises(CutError) as e:
        Split(unet(), *cut)
    msg = str(e.value)
    assert "1 <= front < back <= 10" in msg
    assert "0:enc1" in msg and "9:head" in msg


def test_every_unet_cut_is_valid_and_counted():
    cuts = valid_cuts(unet())
    assert len(cuts) == 36  # 1 <= f < b <= 9
    assert len(valid_cuts(unet(), include_vanilla=True)) == 45


@pytest.mark.parametrize("cut", [(1, 9), (2, 8), (4, 6), (1, 2), (3, 10)])
def test_reported_bytes_equal_wire_bytes(cut):
    net = create_model("unet", width=4)
    s = Split(net, *cut)
    x, y = torch.rand(3, 3, 32, 32), (torch.rand(3, 32, 32) > 0.5).long()
    wire = Wire()
    split_train_step(s, s.client_part(), s.server_part(), x, y, make_loss(), wire)
    per_image = s.bytes_per_image(32)
    assert wire.bytes_up == 3 * per_image["up"]
    assert wire.bytes_down == 3 * per_image["down"]
    assert wire.bytes("up", "activation") == 3 * per_image["up_activations"]
    assert wire.bytes("down", "gradient") == 3 * per_image["down_gradients"]


def test_label_never_crosses_in_u_shape():
    s = Split(unet(), 1, 8)
    wire = Wire()
    x, y = torch.rand(2, 3, 32, 32), (torch.rand(2, 32, 32) > 0.5).long()
    split_train_step(s, s.client_part(), s.server_part(), x, y, make_loss(), wire)
    assert wire.bytes(kind="label") == 0
    assert {k.split("/")[2] for k in wire.by_tensor()} == {"enc1", "dec2"}


def test_parts_hold_only_their_stages():
    net = unet()
    s = Split(net, 2, 7)
    client, server = s.client_part(), s.server_part()
    assert set(client.stages) == {"enc1", "enc2", "dec2", "dec1", "head"}
    assert set(server.stages) == {"enc3", "enc4", "bottleneck", "dec4", "dec3"}
    cp, sp = s.param_share()
    assert cp == client.num_params() and sp == server.num_params()
    assert cp + sp == sum(p.numel() for p in net.parameters())
    with pytest.raises(RuntimeError):
        client.run({"x": torch.zeros(1, 3, 32, 32)}, 0, 4)


def test_wrong_input_size_names_valid_sizes():
    with pytest.raises(ValueError, match="multiples of 16"):
        unet()(torch.zeros(1, 3, 40, 40))
