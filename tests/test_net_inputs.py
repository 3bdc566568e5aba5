"""The one contract between data and net (hw2lab.training.TaskModule): every task's module built from its
config and the data's net inputs saves a checkpoint that rebuilds the same net with nothing else."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import compose_config

from hw2lab.errors import HW2LabError
from hw2lab.pipeline import build
from hw2lab.training import NET_INPUTS_KEY

CLASSES = ["business", "sport", "tech"]
ITOS = ["<pad>", "<unk>", "shares", "cup", "chip"]

# task overrides -> (what the task's datamodule's net_inputs() gives, a batch of inputs for the net)
CASES = {
    "vae": (["task=vae"], {"image_shape": [1, 28, 28]}, lambda: (torch.rand(2, 1, 28, 28),)),
    "vae_conv": (
        ["task=vae", "model=vae_conv"],
        {"image_shape": [1, 28, 28]},
        lambda: (torch.rand(2, 1, 28, 28),),
    ),
    "covid": (["task=covid"], {"features": ["lastweek", "dow"]}, lambda: (torch.randn(2, 5, 4),)),
    "food": (
        ["task=food", "model=food_cnn3"],
        {"class_names": CLASSES, "image_size": 32},
        lambda: (torch.randn(2, 3, 32, 32),),
    ),
    "news": (
        ["task=news", "model=lstm", "model.embedding.glove_file=null", "model.net.hidden_dim=8"],
        {"classes": CLASSES, "itos": ITOS},
        lambda: (torch.tensor([[2, 3, 4], [4, 2, 0]]), torch.tensor([3, 2])),
    ),
    "charlm": (
        ["task=charlm", "model.net.hidden_size=16", "model.net.embedding_dim=8"],
        {"characters": "\n ABab"},
        lambda: (torch.tensor([[1, 2, 3, 4]]),),
    ),
}


def outputs(module: L.LightningModule, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The net's output for the inputs in eval mode: the mean of the latent code for a VAE, else the logits."""
    net = module.net.eval()
    with torch.no_grad():
        if hasattr(net, "encode"):
            return net.encode(*inputs)[0]
        result = net(*inputs)
    return result[0] if isinstance(result, tuple) else result


def save(module: L.LightningModule, path: Path) -> None:
    """A checkpoint as a run writes it (Lightning's dump, the module's on_save_checkpoint included)."""
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_checkpoint_rebuilds_its_net_without_the_data(case, tmp_path):
    overrides, inputs, batch = CASES[case]
    torch.manual_seed(0)
    module = build(compose_config(overrides, tmp_path).model, "model")
    module.build_net(inputs)  # what `setup` does with the datamodule's net_inputs()
    path = tmp_path / "model.ckpt"
    save(module, path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint[NET_INPUTS_KEY] == inputs
    assert checkpoint["hyper_parameters"]["net"]["_partial_"] is True

    loaded = type(module).load_from_checkpoint(path, weights_only=True)
    assert loaded.net_inputs == inputs and type(loaded.net) is type(module.net)
    example = batch()
    torch.testing.assert_close(outputs(loaded, example), outputs(module, example))
    # The data a loaded model meets again must tell it the same.
    changed = {**inputs, next(iter(inputs)): "something else"}
    with pytest.raises(HW2LabError, match="differ from those this model was built for"):
        loaded.build_net(changed)


def test_a_checkpoint_cannot_name_any_callable():
    from lightning_modules.vae import VAEModule

    adam = {"_target_": "torch.optim.Adam", "_partial_": True}
    with pytest.raises(HW2LabError, match="model.net may only name targets under"):
        VAEModule(net={"_target_": "os.system", "_partial_": True}, optimizer=adam)
    with pytest.raises(HW2LabError, match="model.optimizer may only name targets under"):
        VAEModule(
            net={"_target_": "lightning_modules.vae.MLPVAE", "_partial_": True},
            optimizer={
                "_target_": "torch.optim.Adam",
                "_partial_": True,
                "nested": {"_target_": "os.system"},
            },
        )
