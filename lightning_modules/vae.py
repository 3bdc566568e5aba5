"""Variational auto-encoders: an MLP VAE and a conv VAE, trained on recon + kl_weight * KL.

Scale of the loss, which gives kl_weight (λ) its meaning: the reconstruction term is summed over all pixels
and channels of an image, the KL term over all latent dimensions, and both are averaged over the batch. So
with kl_weight = 1 the loss is the negative ELBO in nats per image (Bernoulli decoder), and λ = 10 weighs
the KL ten times as much as a whole image's reconstruction.

At test time a Bernoulli model also reports `test/nll_iw`, the importance-weighted estimate of -log p(x)
(Burda et al. 2016, "IWAE" bound with K samples), in nats per image: a tighter number than the -ELBO.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hw2lab.errors import check
from hw2lab.training import TaskModule

LIKELIHOODS = ("bernoulli", "gaussian")
EVAL_NOISE_SEED = 0  # the reparameterisation noise of every evaluation pass


class VAEOutput(NamedTuple):
    decoded: torch.Tensor  # decoder output before the sigmoid: Bernoulli logits or pre-sigmoid Gaussian mean
    mu: torch.Tensor
    logvar: torch.Tensor


class VAELoss(NamedTuple):
    loss: torch.Tensor  # what is minimised: recon + kl_weight * kl
    recon: torch.Tensor  # -log p(x|z), summed over pixels, mean over the batch
    kl: torch.Tensor  # KL(q(z|x) || N(0, I)), summed over latent dims, mean over the batch
    neg_elbo: torch.Tensor  # recon + kl: the true bound whatever kl_weight trains


def vae_loss(output: VAEOutput, target: torch.Tensor, likelihood: str, kl_weight: float) -> VAELoss:
    """Bernoulli: binary cross-entropy on logits (targets in [0, 1]). Gaussian: the sum of squared errors
    of the sigmoid mean, i.e. -log N(x; mean, 1/2) up to a constant per pixel."""
    batch = target.shape[0]
    if likelihood == "bernoulli":
        recon = F.binary_cross_entropy_with_logits(output.decoded, target, reduction="sum") / batch
    else:
        recon = F.mse_loss(torch.sigmoid(output.decoded), target, reduction="sum") / batch
    kl = -0.5 * torch.sum(1 + output.logvar - output.mu.pow(2) - output.logvar.exp()) / batch
    return VAELoss(recon + kl_weight * kl, recon, kl, recon + kl)


def importance_weighted_nll(
    net: nn.Module,
    images: torch.Tensor,
    samples: int,
    generator: torch.Generator | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """-log p(x) per image (nats), estimated with `samples` importance samples from q(z|x), Bernoulli decoder:

        log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x).

    A lower bound on log p(x) for every K (so the returned value is >= -log p(x) in expectation), tighter
    than the ELBO (K = 1) and exact as K grows. `net` has encode(x) -> (mu, logvar) and decode(z) -> logits.
    The noise comes from `generator` (on the CPU, then moved: the same draws on any device); the decoder
    sees at most `chunk` latent codes at a time. Returns (N,) on the images' device.
    """
    mu, logvar = net.encode(images)
    std = torch.exp(0.5 * logvar)
    batch, latent = mu.shape
    per_chunk = max(1, chunk // batch)
    log_weights = []
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    for start in range(0, samples, per_chunk):
        count = min(per_chunk, samples - start)
        eps = torch.randn((count, batch, latent), generator=generator).to(mu.device, mu.dtype)
        z = mu + eps * std  # (count, batch, latent)
        logits = net.decode(z.flatten(0, 1)).float()
        targets = images.unsqueeze(0).expand(count, *images.shape).flatten(0, 1)
        log_px_z = -F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).sum(1)
        log_pz = (-0.5 * z.pow(2) - half_log_2pi).sum(-1)
        log_qz = (-0.5 * eps.pow(2) - 0.5 * logvar - half_log_2pi).sum(-1)
        log_weights.append(log_px_z.view(count, batch) + log_pz - log_qz)
    log_px = torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(samples)
    return -log_px


class MLPVAE(nn.Module):
    """The course's VAE: one hidden layer each way (seed report: hidden 400, latent 32)."""

    def __init__(self, image_shape: list[int], hidden_dim: int = 400, latent_dim: int = 32) -> None:
        super().__init__()
        check(hidden_dim > 0 and latent_dim > 0, "model hidden_dim and latent_dim must be positive")
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        pixels = math.prod(self.image_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden_dim), nn.ReLU())
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, pixels),
            nn.Unflatten(1, self.image_shape),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class ConvVAE(nn.Module):
    """Strided conv + BatchNorm encoder, transposed-conv decoder; halves the image while its side is even
    and above 4 (28 -> 14 -> 7, 64 -> 32 -> 16 -> 8 -> 4). With `hidden_dim`, a fully connected hidden layer
    each way between the conv stack and z."""

    def __init__(
        self,
        image_shape: list[int],
        latent_dim: int = 32,
        base_channels: int = 32,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        check(
            hidden_dim is None or hidden_dim > 0,
            f"model.net.hidden_dim must be null or > 0, got {hidden_dim}",
        )
        channels, height, width = image_shape
        check(height == width, f"ConvVAE needs square images, got {height}x{width}")
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        widths, side = [], height
        while side % 2 == 0 and side > 4 and len(widths) < 5:
            widths.append(base_channels * 2 ** len(widths))
            side //= 2
        check(bool(widths), f"ConvVAE needs an even image side above 4, got {height}")
        self.bottom = (widths[-1], side, side)

        encoder, in_channels = [], channels
        for out_channels in widths:
            encoder += [
                nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.LeakyReLU(0.2),
            ]
            in_channels = out_channels
        flat = math.prod(self.bottom)
        # Optionally a fully connected hidden layer each way between the conv stack and z.
        head = [nn.Linear(flat, hidden_dim), nn.LeakyReLU(0.2)] if hidden_dim else []
        self.encoder = nn.Sequential(*encoder, nn.Flatten(), *head)
        self.to_mu = nn.Linear(hidden_dim or flat, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim or flat, latent_dim)

        into = (
            [nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, flat)] if hidden_dim else []
        )
        decoder: list[nn.Module] = [*(into or [nn.Linear(latent_dim, flat)]), nn.Unflatten(1, self.bottom)]
        for in_channels, out_channels in zip(widths[::-1], widths[::-1][1:]):
            decoder += [
                nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            ]
        decoder.append(nn.ConvTranspose2d(widths[0], channels, 4, stride=2, padding=1))
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class VAEModule(TaskModule):
    """Trains a VAE net (MLPVAE or ConvVAE) and logs -ELBO, reconstruction and KL per epoch.

    One optimiser update per training step (automatic optimisation); the optimiser is `model.optimizer`.
    `net`: a partial taking the data's `image_shape` (see TaskModule), or a net built already.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module] | nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        likelihood: str = "bernoulli",
        kl_weight: float = 1.0,
        kl_warmup_epochs: float = 0.0,
        iw_samples: int = 100,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_interval: str = "step",
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval, net=net)
        check(likelihood in LIKELIHOODS, f"model.likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        check(
            isinstance(kl_weight, int | float) and not isinstance(kl_weight, bool),
            f"kl_weight must be a number, got {kl_weight!r}",
        )
        check(kl_weight >= 0, f"kl_weight must be >= 0, got {kl_weight}")
        check(kl_warmup_epochs >= 0, f"model.kl_warmup_epochs must be >= 0, got {kl_warmup_epochs}")
        check(
            isinstance(iw_samples, int) and iw_samples >= 0,
            f"model.iw_samples must be an integer >= 0 (0: off), got {iw_samples!r}",
        )
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.likelihood = likelihood
        self.kl_weight = float(kl_weight)
        self.kl_warmup_epochs = float(kl_warmup_epochs)
        self.iw_samples = iw_samples
        # Made at each evaluation start (so it is never pickled for DDP spawn).
        self._eval_generator: torch.Generator | None = None

    @property
    def latent_dim(self) -> int:
        return self.net.latent_dim

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, logvar = self.net.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return VAEOutput(self.net.decode(z), mu, logvar)

    def training_kl_weight(self) -> float:
        """λ for this training step: with KL warm-up, it rises linearly from 0 to kl_weight over the first
        kl_warmup_epochs epochs (counted in steps); evaluation always uses kl_weight."""
        if self.kl_warmup_epochs <= 0:
            return self.kl_weight
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a trainer: no schedule to follow
            return self.kl_weight
        warmup_steps = self.kl_warmup_epochs * max(1, trainer.num_training_batches)
        return self.kl_weight * min(1.0, (trainer.global_step + 1) / warmup_steps)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        (images,) = batch
        mu, logvar = self.net.encode(images)
        if stage == "train":
            noise = torch.randn_like(mu)
        else:  # see on_validation_epoch_start
            if self._eval_generator is None:
                self._eval_generator = torch.Generator().manual_seed(EVAL_NOISE_SEED)
            noise = torch.randn(mu.shape, generator=self._eval_generator).to(mu.device, mu.dtype)
        z = mu + noise * torch.exp(0.5 * logvar)  # reparameterisation, also when evaluating
        kl_weight = self.training_kl_weight() if stage == "train" else self.kl_weight
        terms = vae_loss(VAEOutput(self.net.decode(z), mu, logvar), images, self.likelihood, kl_weight)
        values = dict(recon=terms.recon, kl=terms.kl, neg_elbo=terms.neg_elbo, loss=terms.loss)
        if stage == "test" and self.likelihood == "bernoulli" and self.iw_samples > 0:
            values["nll_iw"] = importance_weighted_nll(
                self.net, images, self.iw_samples, generator=self._eval_generator
            ).mean()
        self.accumulate(stage, images.shape[0], **values)
        return terms.loss

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        # Evaluation draws its noise from its own generator, the same draws every time: the training RNG
        # stream then does not depend on how often validation runs (with validation off, training is
        # identical to a plain loop's), and the validation curve has no epoch-to-epoch sampling noise.
        self._eval_generator = torch.Generator().manual_seed(EVAL_NOISE_SEED)

    def on_test_epoch_start(self) -> None:
        self._eval_generator = torch.Generator().manual_seed(EVAL_NOISE_SEED)

    # Used by the figure callbacks; inputs and outputs live on the module's device.
    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        mu, _ = self.net.encode(images)
        return torch.sigmoid(self.net.decode(mu).float())

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net.decode(z).float())

    @torch.no_grad()
    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
        """Decoded means along the straight line between the latent means of `start` and `end` images,
        endpoints included: (pairs, steps, C, H, W)."""
        mu_start, _ = self.net.encode(start)
        mu_end, _ = self.net.encode(end)
        weights = torch.linspace(0, 1, steps, device=mu_start.device).view(1, steps, 1)
        path = mu_start.unsqueeze(1) * (1 - weights) + mu_end.unsqueeze(1) * weights
        decoded = self.decode_mean(path.flatten(0, 1))
        return decoded.view(start.shape[0], steps, *decoded.shape[1:])
