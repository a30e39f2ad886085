"""The ImageNet path of the paper profile, offline: a validation folder of JPEGs written here (ImageFolder
layout), the pretrained networks' architectures with random weights, and the two papers' protocols."""
import pytest
import torch
from PIL import Image
from torch import nn

from shiftlab import imagenet, shifts
from shiftlab.data import DatasetError

COLOURS = {"n01440764": (200, 30, 30), "n01443537": (20, 160, 240)}


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet_val")
    for k, (wnid, colour) in enumerate(COLOURS.items()):
        (root / wnid).mkdir()
        for i, size in enumerate([(300, 200), (180, 320)]):
            Image.new("RGB", size, colour).save(root / wnid / f"ILSVRC2012_val_{k}{i}.JPEG", quality=95)
    (root / "README.txt").write_text("not a class")
    return root


def test_folder_reads_as_imagefolder_with_256_frames(val_folder):
    files, labels, classes = imagenet.image_files(val_folder)
    assert classes == sorted(COLOURS) and labels.tolist() == [0, 0, 1, 1] and len(files) == 4
    frame = imagenet.load_frame(files[2])
    assert frame.shape == (3, 256, 256) and 0 <= frame.min() and frame.max() <= 1
    torch.testing.assert_close(frame.mean((1, 2)), torch.tensor(COLOURS[classes[1]]) / 255, atol=0.02, rtol=0)
    a, ya = imagenet.validation_frames(val_folder, 3, seed=1)
    b, yb = imagenet.validation_frames(val_folder, 3, seed=1)
    assert a.shape == (3, 3, 256, 256) and torch.equal(a, b) and torch.equal(ya, yb)


def test_a_wrong_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="imagenet_val=.* is not a folder; valid: .*ImageFolder layout"):
        imagenet.image_files(tmp_path / "missing")
    with pytest.raises(DatasetError, match="holds no images in class sub-folders"):
        imagenet.image_files(tmp_path)


@pytest.mark.parametrize("name", [*imagenet.PRETRAINED, imagenet.ANTIALIASED])
def test_pretrained_architectures_standardise_their_input(name):
    torch.manual_seed(0)
    net = imagenet.pretrained(name, weights=False)
    assert isinstance(net[0], imagenet.Normalize) and not net.training
    with torch.no_grad():
        assert net(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_weights_that_do_not_download_are_one_clear_error(monkeypatch):
    import torchvision.models

    def offline(*args, **kwargs):
        raise OSError("no route to download.pytorch.org")
    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(imagenet.WeightsError, match="pretrained weights of VGG16 could not be loaded .*network access"):
        imagenet.pretrained("VGG16")
    with pytest.raises(ValueError, match="network 'AlexNet' is unknown; valid: VGG16, ResNet50, DenseNet121"):
        imagenet.pretrained("AlexNet")


class Constant(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.arange(5.0))

    def forward(self, x):
        return self.bias.expand(len(x), 5) + 0 * x.mean((1, 2, 3), keepdim=False)[:, None]


class TopLeftBrightness(nn.Module):
    """Class 1 when the window's top-left pixel is bright, else class 0: moves with every 1-px shift."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([-1.0, 1.0]))

    def forward(self, x):
        return (x[:, 0, 0, 0, None] - 0.5) * self.w


def test_protocols_use_the_crops_and_canvases_they_name(val_folder):
    frames, _ = imagenet.validation_frames(val_folder, 4)
    tops, lefts = torch.tensor([0, 5, 31, 2]), torch.tensor([31, 0, 7, 3])
    crops = shifts.windows(frames, tops, lefts, 224)
    for n in range(4):
        assert torch.equal(crops[n], frames[n, :, tops[n]:tops[n] + 224, lefts[n]:lefts[n] + 224])
    assert imagenet.crop_pair_agreement(Constant(), frames, seed=0).all()
    steady = imagenet.crop_diagonal_changes(Constant(), frames)
    assert steady["P(top-1 change)"].eq(0).all() and steady["MAC"].eq(0).all()
    stripes = torch.zeros(1, 3, 256, 256)
    stripes[..., ::2, ::2] = 1.0          # the top-left pixel alternates bright / dark along the diagonal
    jagged = imagenet.crop_diagonal_changes(TopLeftBrightness(), stripes, pairs=4)
    assert jagged["P(top-1 change)"].item() == 1.0
    black = imagenet.black_diagonal_changes(Constant(), frames, side=140)
    assert black["P(top-1 change)"].shape == (4,)
    with pytest.raises(ValueError, match="side=220 is invalid; valid: 1..215 px"):
        imagenet.black_diagonal_changes(Constant(), frames, side=220)


def test_paper_tables_have_a_row_per_network(val_folder):
    frames, labels = imagenet.validation_frames(val_folder, 2)
    torch.manual_seed(0)
    azulay = imagenet.azulay_table(frames, "cpu", names=("ResNet50",), weights=False)
    assert list(azulay.index) == ["ResNet50"] and azulay.shape == (1, 4)
    assert ((0 <= azulay.values) & (azulay.values <= 1)).all()
    zhang = imagenet.zhang_table(frames, labels, "cpu", seed=0, names=("ResNet50",), weights=False)
    assert list(zhang.columns) == ["accuracy", "consistency"] and 0 <= zhang.loc["ResNet50", "consistency"] <= 100
