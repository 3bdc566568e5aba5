"""The news nets: a (bi)LSTM and an EmbeddingBag over word embeddings, and a pretrained BERT-family encoder
with a pooled or LSTM head. Word nets read (token ids, lengths), the Transformer (input ids, attention mask);
each returns class logits."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from hydra.utils import instantiate
from torch import nn

from datamodules.news.pretrained import resolve_pretrained
from hw2lab.errors import HW2LabError, check

LSTM_POOLINGS = ("last", "max", "mean")
POOLINGS = ("mean", "cls", "lstm")


# ---------------------------------------------------------------------------------------------- word models


def reverse_within_lengths(sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, D) with each row's first `lengths[b]` steps reversed and its padding left in place; applied
    twice it gives the input back."""
    steps = torch.arange(sequences.shape[1], device=sequences.device)[None, :]
    last = lengths.to(sequences.device)[:, None] - 1
    index = torch.where(steps <= last, last - steps, steps)
    return sequences.gather(1, index[:, :, None].expand_as(sequences))


class PaddedLSTM(nn.Module):
    """A (bi)LSTM over right-padded batches in which each direction reads only the real tokens: the outputs
    at real positions and the final states are those of a packed sequence, padding never enters them.

    Why not `pack_padded_sequence`: on a CPU, PyTorch's packed LSTM differentiates each time step's slice of
    the packed data into a zero tensor of the whole sequence's size, so its backward pass grows with the
    square of the length (6x slower than this on the real 400-token articles, batch 32;
    `bench/news_lstm_speed.py`). Here the forward direction runs on the padded batch as it is (padding
    comes after every real token) and the backward direction on each row reversed within its length, so
    padding again comes last.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.bidirectional = hidden_size, num_layers, bidirectional
        directions = 2 if bidirectional else 1
        widths = [input_size] + [hidden_size * directions] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(w, hidden_size, batch_first=True) for w in widths)
        self.backward_layers = nn.ModuleList(
            nn.LSTM(w, hidden_size, batch_first=True) for w in (widths if bidirectional else [])
        )
        self.between_layers = nn.Dropout(dropout)  # as nn.LSTM: on every layer's output but the last

    @property
    def output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (B, T, D), lengths (B,) >= 1 -> (outputs (B, T, output_size), real only where t < length;
        final states (B, output_size): the forward state after the last real token, the backward state
        after the first)."""
        lengths = lengths.to(inputs.device)
        last = (lengths - 1)[:, None, None]
        outputs = inputs
        for layer in range(self.num_layers):
            if layer:
                outputs = self.between_layers(outputs)
            forward_out, _ = self.forward_layers[layer](outputs)
            finals = [forward_out.gather(1, last.expand(-1, 1, self.hidden_size)).squeeze(1)]
            if self.bidirectional:
                backward_reversed, _ = self.backward_layers[layer](reverse_within_lengths(outputs, lengths))
                finals.append(backward_reversed.gather(1, last.expand(-1, 1, self.hidden_size)).squeeze(1))
                backward_out = reverse_within_lengths(backward_reversed, lengths)
                outputs = torch.cat([forward_out, backward_out], dim=-1)
            else:
                outputs = forward_out
        return outputs, torch.cat(finals, dim=-1)


class LSTMClassifier(nn.Module):
    """Embedding -> (bi)LSTM over the real tokens -> pooled over time -> linear.

    `pooling`: `last` reads the final hidden state of each direction (what a headline needs); `max` and
    `mean` pool the top layer's outputs over every real token, which carries a 256-token article far
    better than one state at its end (the backward direction's last state has only read the first word).
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        num_classes: int,
        hidden_dim: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.3,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        check(pooling in LSTM_POOLINGS, f"model.net.pooling must be one of {LSTM_POOLINGS}, got {pooling!r}")
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        check(
            hidden_dim > 0 and num_layers > 0,
            "model.net.hidden_dim and model.net.num_layers must be positive",
        )
        self.pooling = pooling
        self.embedding = embedding
        self.lstm = PaddedLSTM(embedding.embedding_dim, hidden_dim, num_layers, bidirectional, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.lstm.output_size, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.clamp(min=1)
        ids = ids[:, : int(lengths.max())]  # a batch may come padded wider than its longest text
        states, finals = self.lstm(self.dropout(self.embedding(ids)), lengths)
        if self.pooling == "last":
            pooled = finals
        else:
            real = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None])[:, :, None]
            if self.pooling == "max":
                pooled = states.masked_fill(~real, float("-inf")).max(dim=1).values
            else:
                pooled = (states * real).sum(dim=1) / lengths[:, None].to(states.dtype)
        return self.head(self.dropout(pooled))


class BagClassifier(nn.Module):
    """The mean of the word embeddings (EmbeddingBag, <pad> ignored) -> linear: the report's baseline."""

    def __init__(self, embedding: nn.Embedding, num_classes: int, dropout: float = 0.3) -> None:
        super().__init__()
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        self.bag = nn.EmbeddingBag.from_pretrained(
            embedding.weight.detach().clone(),
            freeze=not embedding.weight.requires_grad,
            mode="mean",
            padding_idx=0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embedding.embedding_dim, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.bag(ids)))


# ---------------------------------------------------------------------------------------------- transformer


def load_pretrained_encoder(pretrained: str) -> nn.Module:
    """The pretrained encoder with eager attention (so attention maps can be returned)."""
    from transformers import AutoModel

    name = pretrained
    location, local = resolve_pretrained(name)
    try:
        encoder = AutoModel.from_pretrained(location, local_files_only=local, attn_implementation="eager")
    except (OSError, ValueError) as error:
        where = "" if local else " (a hub name needs internet or the Hugging Face cache)"
        raise HW2LabError(
            f"cannot load model.net.encoder.pretrained={name!r} from {location}{where}: {' '.join(str(error).split())[:300]}"
        ) from None
    return encoder.train()  # from_pretrained returns it in eval mode (dropout off); Lightning switches modes


def masked_mean(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token states over the real tokens only: (B, T, D), (B, T) -> (B, D)."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1)


class TransformerClassifier(nn.Module):
    """A pretrained encoder; a head on its masked-mean or [CLS] token state, or a biLSTM over the token
    states (as the seed report did). `encoder`: loaded, or its config (`load_pretrained_encoder`'s, as
    model=transformer gives it), loaded here, so that the net's partial stays a config a checkpoint keeps."""

    def __init__(
        self,
        encoder: nn.Module | Mapping,
        num_classes: int,
        pooling: str = "mean",
        dropout: float = 0.1,
        lstm_hidden: int = 128,
    ) -> None:
        super().__init__()
        check(pooling in POOLINGS, f"model.net.pooling must be one of {POOLINGS}, got {pooling!r}")
        check(0 <= dropout < 1, f"model.net.dropout must be in [0, 1), got {dropout}")
        encoder = instantiate(encoder) if isinstance(encoder, Mapping) else encoder
        self.encoder = encoder
        self.pooling = pooling
        width = encoder.config.hidden_size
        if pooling == "lstm":
            self.lstm = PaddedLSTM(width, lstm_hidden, bidirectional=True)
            width = self.lstm.output_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits_and_attentions(input_ids, attention_mask, output_attentions=False)[0]

    def logits_and_attentions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = True
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """(class logits, every layer's attention (B, heads, T, T) when `output_attentions`)."""
        out = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_attentions=output_attentions
        )
        states = out.last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        elif self.pooling == "mean":
            pooled = masked_mean(states, attention_mask)
        else:
            _, pooled = self.lstm(states, attention_mask.sum(1).clamp(min=1))
        return self.head(self.dropout(pooled)), out.attentions if output_attentions else None
