"""The char-LM's networks: a recurrent one (RNN/LSTM/GRU) and a decoder-only Transformer (GPT).

Both read character ids and return next-character logits, with the same call so the module, the scoring
and the sampler treat them alike: `net(ids, state) -> (logits, state)`. The RNN's state is its hidden
state, carried from one chunk to the next; the GPT has none (it takes the state, ignores it, returns None)
and sees only the characters of the call, at most `context_size` of them. `context_size` is None for a net
that carries its state over any length.

The GPT follows karpathy/nanoGPT's model.py: learned positional embeddings, pre-LayerNorm blocks of causal
self-attention and a GELU MLP, dropout, the token embedding tied to the read-out, GPT-2's initialisation.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from hw2lab.errors import check
from hw2lab.training import RECURRENT_CELLS

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class CharNet(Protocol):
    """What CharLMModule asks of a network: logits and the state to carry, and how much it can read."""

    context_size: int | None

    def __call__(
        self, ids: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden | None]: ...


class CharRNN(nn.Module):
    """Embedding, a stack of recurrent layers, and a linear read-out to next-character logits."""

    # The hidden state carries the whole past: any length of text can be read, chunk after chunk.
    context_size: int | None = None

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check(cell in RECURRENT_CELLS, f"cell must be one of {tuple(RECURRENT_CELLS)}, got {cell!r}")
        check(embedding_dim >= 1, f"model.net.embedding_dim must be >= 1, got {embedding_dim}")
        check(hidden_size >= 1, f"model.net.hidden_size must be >= 1, got {hidden_size}")
        check(num_layers >= 1, f"model.net.num_layers must be >= 1, got {num_layers}")
        check(0.0 <= dropout < 1.0, f"model.net.dropout must be in [0, 1), got {dropout}")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        # nn.RNN uses tanh; dropout applies between recurrent layers (not inside the recurrence).
        self.rnn = RECURRENT_CELLS[cell](
            embedding_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """ids (batch, time) -> logits (batch, time, vocab) and the hidden state after the last step."""
        output, hidden = self.rnn(self.embedding(ids), hidden)
        return self.head(self.dropout(output)), hidden


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees itself and the positions before it."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        # Query, key and value projections for all heads in one matrix, then the output projection.
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, n_head, T, head size)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # the heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, n_embd: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm: attention then MLP, each added to the residual stream."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A decoder-only Transformer over characters, reading at most `block_size` of them at a time.

    Defaults are nanoGPT's "baby GPT" for Tiny Shakespeare (6 layers, 6 heads, 384 wide, context 256,
    dropout 0.2, no biases). The token embedding and the read-out share one matrix (weight tying, as
    nanoGPT does); weights start at N(0, 0.02), the residual projections at N(0, 0.02 / sqrt(2 n_layer)).
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 256,
        n_layer: int = 6,
        n_head: int = 6,
        n_embd: int = 384,
        dropout: float = 0.2,
        bias: bool = False,
    ) -> None:
        super().__init__()
        check(block_size >= 1, f"model.net.block_size must be >= 1, got {block_size}")
        check(n_layer >= 1, f"model.net.n_layer must be >= 1, got {n_layer}")
        check(
            n_head >= 1 and n_embd % n_head == 0,
            f"model.net.n_embd ({n_embd}) must be a multiple of model.net.n_head ({n_head})",
        )
        check(0.0 <= dropout < 1.0, f"model.net.dropout must be in [0, 1), got {dropout}")
        self.context_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(n_embd, n_head, dropout, bias) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, ids: torch.Tensor, hidden: None = None) -> tuple[torch.Tensor, None]:
        """ids (batch, time <= block_size) -> logits (batch, time, vocab); no state (`hidden` is ignored)."""
        b, t = ids.size()
        check(t <= self.context_size, f"the GPT reads at most {self.context_size} characters, got {t}")
        pos = torch.arange(t, dtype=torch.long, device=ids.device)
        x = self.drop(self.wte(ids) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x)), None
