"""The covid task's recurrent classifier and LightningModule, its baselines and scores."""

from lightning_modules.covid.classifier import CovidModule, RecurrentClassifier

__all__ = ["CovidModule", "RecurrentClassifier"]
