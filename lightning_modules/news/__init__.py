"""The news task's LightningModule, its nets, the GloVe-initialised embedding and the TF-IDF baseline."""

from lightning_modules.news.classifier import NewsClassifier

__all__ = ["NewsClassifier"]
