"""The news task's data: articles read and split, word and sub-word DataModules, GloVe and pretrained files."""

from datamodules.news.base import NewsDataModule
from datamodules.news.subword import SubwordNewsDataModule
from datamodules.news.words import WordNewsDataModule

__all__ = ["NewsDataModule", "SubwordNewsDataModule", "WordNewsDataModule"]
