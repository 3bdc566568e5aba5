"""The VAE task: loss, datamodules on real-format files, the λ sweep end to end, bad input."""

from __future__ import annotations

import csv
import json
import math
from functools import partial

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_run_outputs, compose_config, model_for_data, quiet_trainer, write_tibetan_npz
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from PIL import Image
from torch import nn

from callbacks.vae import Interpolations, PriorSamples, interpolation_rows
from datamodules.vae import ImageFolderDataModule, TibetanMNISTDataModule, split_indices
from hw2lab.errors import HW2LabError
from hw2lab.pipeline import fit_and_test
from lightning_modules.vae import MLPVAE, ConvVAE, VAEModule, VAEOutput, importance_weighted_nll, vae_loss

TINY = ["trainer.max_epochs=2", "data.batch_size=16", "logger=tensorboard"]
ADAM = partial(torch.optim.Adam, lr=1e-3)


@pytest.fixture
def tibetan_dir(tmp_path):
    return write_tibetan_npz(tmp_path / "data", count=60)


@pytest.fixture
def faces_dir(tmp_path):
    """A flat folder of 24 RGB JPEG faces of 96x96 named 0.jpg ... 23.jpg, like the anime set."""
    folder = tmp_path / "data" / "anime_faces" / "mlds_faces96"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return tmp_path / "data"


def test_loss_matches_hand_computation():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 0.5]]], [[[1.0, -2.0], [0.0, 3.0]]]])
    target = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]], [[[1.0, 0.0], [1.0, 1.0]]]])
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [math.log(0.5), 0.0]])

    def bce(logit, y):
        p = 1 / (1 + math.exp(-logit))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    recon_hand = (
        sum(bce(logit, y) for logit, y in zip(logits.flatten().tolist(), target.flatten().tolist())) / 2
    )
    kl_hand = 0.0
    for m_row, lv_row in zip(mu.tolist(), logvar.tolist()):
        kl_hand += sum(0.5 * (math.exp(lv) + m * m - 1 - lv) for m, lv in zip(m_row, lv_row))
    kl_hand /= 2

    terms = vae_loss(VAEOutput(logits, mu, logvar), target, "bernoulli", kl_weight=10.0)
    assert terms.recon.item() == pytest.approx(recon_hand, rel=1e-6)
    assert terms.kl.item() == pytest.approx(kl_hand, rel=1e-6)
    assert terms.loss.item() == pytest.approx(recon_hand + 10.0 * kl_hand, rel=1e-6)
    assert terms.neg_elbo.item() == pytest.approx(recon_hand + kl_hand, rel=1e-6)

    gaussian = vae_loss(VAEOutput(logits, mu, logvar), target, "gaussian", kl_weight=0.0)
    sse = ((torch.sigmoid(logits) - target) ** 2).sum().item() / 2
    assert gaussian.recon.item() == pytest.approx(sse, rel=1e-6)
    assert gaussian.loss.item() == pytest.approx(sse, rel=1e-6)


@pytest.mark.parametrize(
    "net_class, shape", [(MLPVAE, [1, 28, 28]), (ConvVAE, [1, 28, 28]), (ConvVAE, [3, 64, 64])]
)
def test_nets_round_trip_shapes(net_class, shape):
    net = net_class(image_shape=shape, latent_dim=8)
    module = VAEModule(
        net, optimizer=ADAM
    ).eval()  # BatchNorm uses running statistics, as in the figure callbacks
    images = torch.rand(3, *shape)
    mu, logvar = net.encode(images)
    assert mu.shape == logvar.shape == (3, 8)
    assert net.decode(mu).shape == images.shape
    path = module.interpolate(images[:2], images[1:3], steps=9)
    assert path.shape == (2, 9, *shape)
    # endpoints are the reconstructions of the two images
    torch.testing.assert_close(path[:, 0], module.reconstruct(images[:2]))
    torch.testing.assert_close(path[:, -1], module.reconstruct(images[1:3]))


def test_split_is_seeded_and_disjoint():
    first = split_indices(100, [0.8, 0.1, 0.1], seed=3)
    again = split_indices(100, [0.8, 0.1, 0.1], seed=3)
    assert [len(p) for p in first] == [80, 10, 10]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert sorted(torch.cat(first).tolist()) == list(range(100))
    with pytest.raises(HW2LabError, match="sum to 1"):
        split_indices(10, [0.5, 0.1, 0.1], seed=0)


def test_tibetan_datamodule_on_real_format(tibetan_dir):
    module = TibetanMNISTDataModule(
        file="tibetan_mnist/TibetanMNIST.npz",
        data_dir=str(tibetan_dir),
        channels=1,
        image_size=28,
        binarize=True,
        batch_size=32,
    )
    module.setup()
    assert [len(module.images(s)) for s in ("train", "val", "test")] == [48, 6, 6]
    batches = [images for (images,) in module.train_dataloader()]
    assert [batch.shape for batch in batches] == [(32, 1, 28, 28), (16, 1, 28, 28)]
    assert set(torch.unique(torch.cat(batches)).tolist()) <= {0.0, 1.0}
    # every training image once per epoch (sums of 0/1 pixels are exact whatever the order)
    assert torch.equal(torch.cat(batches).sum(0), module.images("train").sum(0))


def test_face_folder_datamodule_resizes_and_crops(faces_dir):
    module = ImageFolderDataModule(
        folder="anime_faces/mlds_faces96", data_dir=str(faces_dir), channels=3, image_size=32, crop=80
    )
    module.setup()
    total = sum(len(module.images(s)) for s in ("train", "val", "test"))
    assert total == 24 and module.images("train").shape[1:] == (3, 32, 32)
    assert 0.0 <= module.images("train").min() and module.images("train").max() <= 1.0


def test_real_tibetan_mnist(real_data_dir):
    module = TibetanMNISTDataModule(
        file="tibetan_mnist/TibetanMNIST.npz", data_dir=str(real_data_dir), channels=1, image_size=28
    )
    module.setup()
    sizes = [len(module.images(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 17768 and sizes[0] == round(0.8 * 17768)


def test_real_anime_faces(real_data_dir):
    module = ImageFolderDataModule(
        folder="anime_faces/mlds_faces96",
        data_dir=str(real_data_dir),
        channels=3,
        image_size=64,
        max_images=200,
    )
    module.setup()
    assert module.images("train").shape[1:] == (3, 64, 64)


def test_config_composes_for_both_models_and_datasets(tmp_path):
    for overrides in (
        ["task=vae"],
        ["task=vae", "model=vae_conv", "data=anime_faces"],
        ["experiment=vae_mlp_tibetan"],
        ["experiment=vae_conv_anime"],
    ):
        cfg = compose_config(overrides, tmp_path)
        module = model_for_data(cfg)
        assert module.latent_dim == 32
        channels = cfg.data.channels
        assert module.net.image_shape == (channels, cfg.data.image_size, cfg.data.image_size)
        assert "updates_per_step" not in cfg.data
        optimizer = module.configure_optimizers()  # Adam 1e-3, no weight decay (the seed reports')
        assert isinstance(optimizer, torch.optim.Adam)
        assert {(g["lr"], g["weight_decay"]) for g in optimizer.param_groups} == {(1e-3, 0.0)}
        assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(module.parameters()))
    cfg = compose_config(["task=vae", "kl_weight=10"], tmp_path)
    assert cfg.model.kl_weight == 10
    assert compose_config(["experiment=vae_conv_anime"], tmp_path).data.batch_size == 64


def test_one_optimizer_update_per_step_and_fixed_evaluation_noise(tmp_path, tibetan_dir):
    """Automatic optimisation: each training batch is one Adam update; evaluation draws the same noise on
    every pass, so validating twice gives the same numbers."""
    cfg = compose_config(["task=vae", "data.batch_size=16", "model.net.hidden_dim=32"], tmp_path)
    datamodule = instantiate(cfg.data, data_dir=str(tibetan_dir))
    module = instantiate(cfg.model)
    trainer = quiet_trainer(
        max_epochs=2,
    )
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 2 * 3  # 48 training images, batches of 16, 2 epochs
    logged = trainer.callback_metrics
    assert {
        f"{stage}/{name}" for stage in ("train", "val") for name in ("recon", "kl", "neg_elbo", "loss")
    } <= set(logged)
    torch.testing.assert_close(logged["val/neg_elbo"], logged["val/recon"] + logged["val/kl"])
    first = trainer.validate(module, datamodule=datamodule, verbose=False)
    again = trainer.validate(module, datamodule=datamodule, verbose=False)
    assert first == again and first[0]["val/loss"] > 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"optimizer": ADAM, "kl_weight": "abc"}, "kl_weight must be a number, got 'abc'"),
        ({"optimizer": ADAM, "kl_weight": -1}, "kl_weight must be >= 0"),
        ({"optimizer": partial(torch.optim.Adam, lr=-1)}, "bad model.optimizer: Invalid learning rate"),
        ({"optimizer": ADAM, "likelihood": "laplace"}, "model.likelihood must be one of"),
    ],
)
def test_bad_model_values_fail_when_the_module_is_built(arguments, message):
    with pytest.raises(HW2LabError, match=message):
        VAEModule(MLPVAE(image_shape=[1, 28, 28], hidden_dim=8, latent_dim=2), **arguments)


@pytest.mark.slow
def test_kl_sweep_end_to_end(cli, tmp_path, tibetan_dir):
    result = cli(["-m", "task=vae", "kl_weight=0,10", *TINY], data_dir=tibetan_dir)
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        metrics = assert_run_outputs(
            sweep / job, ["learning_curves", "reconstructions", "prior_samples", "interpolations"]
        )
        for split in ("train", "val", "test"):
            for name in ("neg_elbo", "recon", "kl"):
                assert math.isfinite(metrics["metrics"][f"{split}/{name}"])
    assert json.loads((sweep / "1" / "metrics.json").read_text())["hparams"]["model.kl_weight"] == 10
    with open(sweep / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert rows[0]["overrides"].split()[1] == "kl_weight=0" and "test/neg_elbo" in rows[0]
    assert "kl_weight=10" in (sweep / "summary.md").read_text()
    assert (sweep / "comparison.png").stat().st_size > 10_000
    assert "epoch 2/2" in result.stderr + result.stdout  # the one-line epoch summaries


@pytest.mark.slow
def test_failed_job_is_recorded_and_sweep_exits_nonzero(cli, tmp_path, tibetan_dir):
    result = cli(["-m", "task=vae", "kl_weight=-1,1", *TINY], data_dir=tibetan_dir, expect_ok=False)
    assert result.returncode != 0
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "summary.csv")))
    assert [row["status"] for row in rows] == ["failed", "ok"]
    assert "kl_weight must be >= 0" in rows[0]["error"]
    assert "1 of 2 jobs failed" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["task=vae"], "missing dataset file tibetan_mnist/TibetanMNIST.npz"),
        (["task=vae", "kl_weight=-1"], "kl_weight must be >= 0"),
        (["task=vae", "kl_weight=abc"], "kl_weight (model.kl_weight) must be a number"),
        (["task=vae", "model=no_such_model"], "Could not find 'model/no_such_model'"),
    ],
)
def test_bad_input_is_one_clear_line(cli, tmp_path, tibetan_dir, args, message):
    data_dir = tmp_path / "empty" if "missing" in message else tibetan_dir
    result = cli(args, data_dir=data_dir, expect_ok=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if "Could not find" not in message:  # our errors; Hydra's own composition errors keep Hydra's hint
        assert "HYDRA_FULL_ERROR" not in result.stderr


@pytest.mark.slow
def test_corrupt_image_is_one_clear_line(cli, faces_dir):
    (faces_dir / "anime_faces" / "mlds_faces96" / "7.jpg").write_bytes(b"not a jpeg at all")
    result = cli(["task=vae", "data=anime_faces", "trainer=debug"], data_dir=faces_dir, expect_ok=False)
    assert result.returncode != 0
    assert "cannot read image" in result.stderr and "7.jpg" in result.stderr
    assert "Traceback" not in result.stderr


class _FixedNet(nn.Module):
    """A VAE net whose decoder ignores z (logits `bias`) and whose encoder returns fixed (mu, logvar)."""

    def __init__(self, bias: torch.Tensor, mu: float, logvar: float, latent_dim: int = 3) -> None:
        super().__init__()
        self.bias, self.mu, self.logvar, self.latent_dim = bias, mu, logvar, latent_dim

    def encode(self, x):
        shape = (x.shape[0], self.latent_dim)
        return torch.full(shape, self.mu), torch.full(shape, self.logvar)

    def decode(self, z):
        return self.bias.expand(z.shape[0], *self.bias.shape)


class _OnePixelNet(nn.Module):
    """One latent dimension, one pixel: p(x = 1 | z) = sigmoid(w z + b); q(z|x) = N(m_x, s²)."""

    latent_dim = 1

    def __init__(self, w: float, b: float, m: tuple[float, float], logvar: float) -> None:
        super().__init__()
        self.w, self.b, self.m, self.logvar = w, b, m, logvar

    def encode(self, x):
        mu = torch.where(x.flatten(1)[:, :1] > 0.5, self.m[1], self.m[0])
        return mu, torch.full_like(mu, self.logvar)

    def decode(self, z):
        return (self.w * z + self.b).view(-1, 1, 1, 1)


def test_importance_weighted_nll_is_exact_when_the_decoder_ignores_z():
    """p(x|z) = p(x): with q = the prior every weight is p(x), so the estimate is exact for any K; with
    another q the weights p(z)/q(z|x) average to 1, so it converges to the exact value."""
    bias = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(0))
    images = (torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    exact = F.binary_cross_entropy_with_logits(bias.expand_as(images), images, reduction="none").sum(
        (1, 2, 3)
    )
    for samples in (1, 7, 100):
        estimate = importance_weighted_nll(_FixedNet(bias, 0.0, 0.0), images, samples)
        torch.testing.assert_close(estimate, exact)
    generator = torch.Generator().manual_seed(2)
    estimate = importance_weighted_nll(_FixedNet(bias, 0.2, math.log(0.8)), images, 20_000, generator, 50_000)
    torch.testing.assert_close(estimate, exact, atol=0.02, rtol=0)


def test_importance_weighted_nll_against_quadrature():
    """A one-pixel Bernoulli decoder with a one-dimensional latent: -log p(x) by numerical integration of
    sigmoid(w z + b) N(z; 0, 1) over z; the IWAE estimate approaches it as K grows and never beats it on
    average (a bound), and one sample is the ELBO's Monte Carlo estimate (further off)."""
    w, b = 3.0, -1.0
    z = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    prior = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    p_one = torch.trapezoid(torch.sigmoid(w * z + b) * prior, z).item()
    exact = torch.tensor([-math.log(1 - p_one), -math.log(p_one)], dtype=torch.float64)  # x = 0, x = 1
    images = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    net = _OnePixelNet(w, b, m=(-0.55, 0.85), logvar=math.log(0.6))  # near the posteriors, wider
    generator = torch.Generator().manual_seed(3)
    many = importance_weighted_nll(net, images, 50_000, generator)
    torch.testing.assert_close(many.double(), exact, atol=2e-3, rtol=0)
    few = torch.stack([importance_weighted_nll(net, images, 5, generator) for _ in range(2000)]).mean(0)
    one = torch.stack([importance_weighted_nll(net, images, 1, generator) for _ in range(2000)]).mean(0)
    assert (few.double() >= exact - 1e-3).all() and (one > few).all()


def test_interpolation_rows_have_the_real_images_at_the_ends():
    module = VAEModule(ConvVAE(image_shape=[1, 28, 28], latent_dim=4), optimizer=ADAM).eval()
    start, end = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    rows = interpolation_rows(module, start, end, steps=6)
    assert rows.shape == (3, 8, 1, 28, 28)
    assert torch.equal(rows[:, 0], start) and torch.equal(rows[:, -1], end)
    torch.testing.assert_close(rows[:, 1], module.reconstruct(start))
    torch.testing.assert_close(rows[:, -2], module.reconstruct(end))


def test_kl_warmup_rises_linearly_then_holds(tmp_path, tibetan_dir):
    cfg = compose_config(
        ["task=vae", "data.batch_size=16", "model.net.hidden_dim=16", "model.kl_warmup_epochs=2"]
    )
    datamodule = instantiate(cfg.data, data_dir=str(tibetan_dir))
    module = instantiate(cfg.model)
    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(pl_module.training_kl_weight())

    trainer = quiet_trainer(
        max_epochs=3,
        callbacks=[Record()],
    )
    trainer.fit(module, datamodule=datamodule)
    assert seen == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1, 1, 1])  # 3 steps an epoch


def test_iwae_estimate_is_below_the_elbo_after_a_short_run(tmp_path, tibetan_dir):
    cfg = compose_config(["task=vae", "data.batch_size=16", "model.net.hidden_dim=32", "model.iw_samples=50"])
    datamodule = instantiate(cfg.data, data_dir=str(tibetan_dir))
    module = instantiate(cfg.model)
    trainer = quiet_trainer(
        max_epochs=2,
    )
    trainer.fit(module, datamodule=datamodule)
    (result,) = trainer.test(module, datamodule=datamodule, verbose=False)
    assert 0 < result["test/nll_iw"] < result["test/neg_elbo"]
    for off in (["model.iw_samples=0"], ["model.likelihood=gaussian"]):  # off, and no estimate for Gaussian
        cfg = compose_config(["task=vae", "data.batch_size=16", "model.net.hidden_dim=8", *off])
        (result,) = trainer.test(instantiate(cfg.model), datamodule=datamodule, verbose=False)
        assert "test/nll_iw" not in result and "test/neg_elbo" in result


# The course reports' experiments: preset -> (settings it must carry, the sweep it runs with -m).
REPORT_PRESETS = {
    "vae_mlp_tibetan": ({"data.batch_size": 128, "trainer.max_epochs": 15, "model.net.latent_dim": 32}, None),
    "vae_mlp_anime": (
        {
            "data.image_size": 64,
            "data.batch_size": 2048,
            "trainer.max_epochs": 30,
            "model.net.hidden_dim": 400,
        },
        None,
    ),
    "vae_mlp_faces28": (
        {"data.image_size": 28, "data.channels": 3, "model.net.hidden_dim": 400, "model.net.latent_dim": 50},
        None,
    ),
    "vae_conv_anime": (
        {
            "model.net.latent_dim": 32,
            "data.batch_size": 64,
            "trainer.max_epochs": 100,
            "data.split": [0.9, 0.05, 0.05],
        },
        None,
    ),
    "vae_anime_likelihood": ({"data.image_size": 64}, {"model.likelihood": "bernoulli,gaussian"}),
    "vae_kl_tibetan": ({"data.binarize": True}, {"kl_weight": "0,1,10,100"}),
    "vae_kl_anime": ({"data.image_size": 28, "model.net.latent_dim": 50}, {"kl_weight": "0,1,100,500"}),
    "vae_kl_anime_70": ({"data.image_size": 28, "model.net.latent_dim": 50}, {"kl_weight": "0,1,70,100"}),
    # not a report's: the model that beats them on TibetanMNIST
    "vae_conv_tibetan": ({"model.net.hidden_dim": 512, "model.kl_warmup_epochs": 5, "kl_weight": 1.0}, None),
}


@pytest.mark.parametrize("preset", sorted(REPORT_PRESETS))
def test_report_preset_carries_its_settings(preset, tmp_path):
    settings, sweep = REPORT_PRESETS[preset]
    cfg = compose_config([f"experiment={preset}"], tmp_path)
    for key, value in settings.items():
        assert OmegaConf.select(cfg, key) == value, key
    raw = OmegaConf.load(f"conf/experiment/{preset}.yaml")
    assert OmegaConf.select(raw, "hydra.sweeper.params", default=None) == sweep
    if preset == "vae_conv_anime":  # the 4 conv + BatchNorm blocks each way (64 -> 4)
        net = instantiate(cfg.model.net)(image_shape=[cfg.data.channels, *[cfg.data.image_size] * 2])
        assert sum(isinstance(m, nn.BatchNorm2d) for m in net.encoder) == 4
        assert net.bottom[1:] == (4, 4)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(REPORT_PRESETS))
def test_report_preset_runs_a_few_batches(preset, tmp_path, tibetan_dir, faces_dir):
    cfg = compose_config([f"experiment={preset}", "trainer=debug", "logger=none"], tmp_path)
    with open_dict(cfg):
        cfg.data.data_dir = str(tibetan_dir if cfg.data.channels == 1 else faces_dir)
    result = fit_and_test(cfg, tmp_path)
    assert result["global_step"] >= 1 and math.isfinite(result["metrics"]["test/neg_elbo"])
    assert ("test/nll_iw" in result["metrics"]) == (cfg.model.likelihood == "bernoulli")


@pytest.mark.slow
def test_kl_sweep_preset_runs_its_four_jobs(cli, tmp_path, tibetan_dir):
    cli(["-m", "experiment=vae_kl_tibetan", *TINY], data_dir=tibetan_dir)
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "summary.csv")))
    assert [row["status"] for row in rows] == ["ok"] * 4
    weights = [
        json.loads((tmp_path / "sweep" / str(i) / "metrics.json").read_text())["hparams"] for i in range(4)
    ]
    assert [w["model.kl_weight"] for w in weights] == [0, 1, 10, 100]
    assert (tmp_path / "sweep" / "comparison.png").exists()


@pytest.mark.slow
def test_per_epoch_figure_files(cli, tmp_path, tibetan_dir):
    cli(
        ["task=vae", *TINY, "trainer.max_epochs=3", "callbacks.prior_samples.every_n_epochs=2"],
        data_dir=tibetan_dir,
    )
    run = tmp_path / "run" / "figures"
    assert (run / "epoch_002" / "prior_samples.png").exists()
    assert not (run / "epoch_001").exists() and not (run / "epoch_003").exists()
    assert not (run / "epoch_002" / "reconstructions.png").exists()


def test_per_epoch_figure_period_must_be_positive(tmp_path):
    with pytest.raises(HW2LabError, match="callbacks.prior_samples.every_n_epochs must be null or >= 1"):
        PriorSamples(str(tmp_path), every_n_epochs=0)
    assert Interpolations(str(tmp_path)).every_n_epochs is None  # off unless asked
