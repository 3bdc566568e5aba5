"""The char-LM task: batching, both scores (streamed and nanoGPT's windows), the GPT, training, sampling, bad
input, real data, and a cell sweep and a GPT run end to end."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_run_outputs, compose_config, quiet_trainer
from torch import nn

from callbacks.charlm import TextSamples, compare_models, paragraph_context
from datamodules.charlm import (
    IGNORE_INDEX,
    CharTextDataModule,
    EvalWindows,
    RandomWindows,
    StreamChunks,
    Vocabulary,
)
from hw2lab.errors import HW2LabError
from hw2lab.pipeline import fit_and_test
from hw2lab.sweep import JobRecord
from hw2lab.training import cosine_decay, parameter_groups
from lightning_modules.charlm import CharLMModule, bits_per_character, warmup_cosine_decay
from lightning_modules.charlm.nets import GPT, CharRNN

# A few lines in the course's spirit: enough structure for a tiny model to learn something quickly.
TEXT = (
    "NCTU is good.\nNCTU is great.\nROMEO: is NCTU good?\nJULIET: NCTU is good, Romeo.\n" * 30
    + "ROMEO: good night, good night.\n" * 10
)


def write_text(tmp_path: Path, text: str = TEXT, name: str = "text.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def make_datamodule(tmp_path: Path, text: str = TEXT, **kwargs) -> CharTextDataModule:
    path = write_text(tmp_path, text)
    options = {
        "batch_size": 4,
        "time_step": 8,
        "eval_batch_size": 3,
        "eval_windows": 5,
        "eval_window_length": 8,
        **kwargs,
    }
    return CharTextDataModule(data_dir=str(tmp_path), file=path.name, **options)


class HistoryNet(nn.Module):
    """A toy char net whose every output depends on its whole history and is easy to compute by hand: its
    state is the running sum s of the ids it has read (per row), and after reading id x its logits are
    (1 + s mod 3) * table[x] plus 8 on character s mod vocabulary. The table's entries are in [-1, 1], so
    that character is the argmax, and the scale moves every score."""

    context_size = None

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.table = nn.Parameter(torch.arange(vocab_size * vocab_size).float().sin().view(vocab_size, -1))

    def forward(
        self, ids: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sums = ids.cumsum(1) + (0 if hidden is None else hidden[:, None])
        scale = 1 + (sums % 3)[..., None]
        return scale * self.table[ids] + 8.0 * F.one_hot(sums % self.vocab_size, self.vocab_size), sums[:, -1]

    def by_hand(self, ids: list[int], start: int = 0) -> list[list[float]]:
        """The logits of each step for one row, from a running sum of `start`, in plain Python."""
        rows, total = [], start
        for x in ids:
            total += x
            table = self.table[x].tolist()
            rows.append(
                [
                    (1 + total % 3) * v + (8.0 if c == total % self.vocab_size else 0.0)
                    for c, v in enumerate(table)
                ]
            )
        return rows


class WindowNet(HistoryNet):
    """HistoryNet read the way a GPT is: no state (the running sum starts afresh at every call), at most
    `context_size` characters a call."""

    context_size = 8

    def forward(self, ids: torch.Tensor, hidden: None = None) -> tuple[torch.Tensor, None]:
        assert ids.shape[1] <= self.context_size
        return super().forward(ids)[0], None


def nats(row: list[float], target: int) -> float:
    """-log softmax(row)[target], by hand."""
    return math.log(sum(math.exp(v) for v in row)) - row[target]


def for_text(module: CharLMModule, vocabulary: str | None) -> CharLMModule:
    """The module with its net built for these characters, as `setup` builds it from the datamodule."""
    if vocabulary is not None:
        module.build_net({"characters": vocabulary})
    return module


def history_module(vocabulary: str | None = None) -> CharLMModule:
    return for_text(CharLMModule(net=HistoryNet, optimizer=partial(torch.optim.SGD, lr=0.1)), vocabulary)


def make_gpt(
    vocabulary: str | None = None, block_size: int = 16, dropout: float = 0.0, **kwargs
) -> CharLMModule:
    net = partial(GPT, block_size=block_size, n_layer=2, n_head=2, n_embd=16, dropout=dropout, **kwargs)
    return for_text(CharLMModule(net=net, optimizer=partial(torch.optim.AdamW, lr=1e-2)), vocabulary)


def make_module(
    cell: str = "lstm",
    embedding_dim: int = 64,
    hidden_size: int = 256,
    num_layers: int = 2,
    dropout: float = 0.0,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    scheduler=None,
    vocabulary: str | None = None,
) -> CharLMModule:
    """The module as config builds it: `net` and `optimizer` partials (model.net, model.optimizer)."""
    module = CharLMModule(
        net=partial(
            CharRNN,
            cell=cell,
            embedding_dim=embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
        ),
        optimizer=partial(torch.optim.AdamW, lr=lr, weight_decay=weight_decay),
        scheduler=scheduler,
    )
    return for_text(module, vocabulary)


# --- batching -------------------------------------------------------------------------------------


def test_stream_chunks_continue_each_other_and_cover_every_pair_once():
    ids = torch.arange(103)  # distinct ids make positions visible: id == position in the text
    chunks = list(StreamChunks(ids, batch_size=4, time_step=5))
    # 102 pairs in 4 streams of 26 (2 padding at the end of the last stream), chunks of 5: 6 chunks.
    assert len(chunks) == 6
    assert [tuple(c.inputs.shape) for c in chunks] == [(4, 5)] * 5 + [(4, 1)]
    assert [c.reset for c in chunks] == [True] + [False] * 5
    for chunk in chunks:
        valid = chunk.targets != IGNORE_INDEX
        assert torch.equal(chunk.targets[valid], chunk.inputs[valid] + 1)  # the next character
    for before, after in zip(chunks, chunks[1:]):
        # Row b of the next chunk starts right where row b of this chunk stopped: the carried state fits.
        streaming = after.targets[:, 0] != IGNORE_INDEX
        assert torch.equal(after.inputs[streaming, 0], before.inputs[streaming, -1] + 1)
    scored = torch.cat([c.inputs[c.targets != IGNORE_INDEX] for c in chunks])
    assert sorted(scored.tolist()) == list(range(102))


def test_stream_chunks_the_course_example():
    vocabulary = Vocabulary("NCTU is good")
    ids = vocabulary.encode("NCTU is good")
    (first, second, third) = StreamChunks(ids, batch_size=2, time_step=2)
    # 11 pairs in 2 streams of 6: "NCTU i" -> "CTU is", "s good" -> " good" + padding.
    assert [vocabulary.decode(row) for row in first.inputs] == ["NC", "s "]
    assert [vocabulary.decode(row) for row in second.inputs] == ["TU", "go"]
    assert [vocabulary.decode(row) for row in first.targets] == ["CT", " g"]
    assert third.targets[1, -1] == IGNORE_INDEX


def test_random_windows_shapes_seed_and_fresh_draws():
    ids = torch.arange(500)
    batches = RandomWindows(ids, batch_size=3, time_step=7, seed=1)
    epoch_one, epoch_two = list(batches), list(batches)
    assert len(epoch_one) == len(batches) == 499 // 21
    for batch in epoch_one:
        assert batch.reset and batch.inputs.shape == (3, 7)
        assert torch.equal(batch.targets, batch.inputs + 1)
        assert torch.equal(batch.inputs[:, 1:], batch.inputs[:, :-1] + 1)  # contiguous windows
    assert not torch.equal(epoch_one[0].inputs, epoch_two[0].inputs)
    again = RandomWindows(ids, batch_size=3, time_step=7, seed=1)
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(epoch_one, again))
    again.set_epoch(1)  # what Lightning does at an epoch start, e.g. after resuming: the same draw
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(epoch_two, again))


def test_stream_epochs_of_part_of_a_pass_continue_where_the_last_stopped():
    ids = torch.arange(103)
    whole = list(StreamChunks(ids, batch_size=4, time_step=5))  # one pass: 6 chunks
    short = StreamChunks(ids, batch_size=4, time_step=5, batches_per_epoch=4)
    epochs = [list(short) for _ in range(3)]  # 12 chunks: two passes
    assert len(short) == 4 and [len(epoch) for epoch in epochs] == [4, 4, 4]
    read = [chunk for epoch in epochs for chunk in epoch]
    for chunk, expected in zip(read, whole + whole):
        assert torch.equal(chunk.inputs, expected.inputs) and chunk.reset == expected.reset
    assert [chunk.reset for chunk in read] == [True] + [False] * 5 + [True] + [False] * 5
    short.set_epoch(1)  # what Lightning does at an epoch start, e.g. after resuming
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(short, epochs[1]))


def test_evaluation_windows_are_seeded_contiguous_and_fresh():
    ids = torch.arange(300)
    windows = EvalWindows(ids, count=10, length=16, seed=3, batch_size=4)
    batches = list(windows)
    assert len(windows) == 3 and [b.inputs.shape[0] for b in batches] == [4, 4, 2]
    for batch in batches:
        assert batch.reset and batch.inputs.shape[1] == 16
        assert torch.equal(batch.targets, batch.inputs + 1)  # the next character of the text
        assert torch.equal(batch.inputs[:, 1:], batch.inputs[:, :-1] + 1)  # contiguous
        assert int(batch.targets.max()) <= 299
    # The same windows on every pass and for every object with that seed; others with another seed.
    again = list(EvalWindows(ids, count=10, length=16, seed=3, batch_size=4))
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(batches, list(windows)))
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(batches, again))
    other = list(EvalWindows(ids, count=10, length=16, seed=4, batch_size=4))
    assert not torch.equal(batches[0].inputs, other[0].inputs)


def test_datamodule_splits_contiguously_with_training_vocabulary(tmp_path):
    text = "abcd" * 40 + "abcx" * 5 + "e" * 20  # train 160 / val 20 / test 20 characters
    datamodule = make_datamodule(tmp_path, text, split=[0.8, 0.1, 0.1])
    datamodule.setup()
    assert datamodule.vocabulary.characters == "abcd"
    assert datamodule.vocabulary.decode(datamodule.splits["train"]) == text[:160]
    # The defined fallback: characters unseen in training cannot be scored, so they are dropped (with a
    # warning); a test part left with nothing falls back to the validation stream.
    assert datamodule.vocabulary.decode(datamodule.splits["val"]) == "abc" * 5
    assert datamodule.splits["test"] is datamodule.splits["val"]


def test_datamodule_default_split_is_ninety_ten_and_test_is_validation(tmp_path):
    datamodule = make_datamodule(tmp_path)
    datamodule.setup()
    train, val = datamodule.splits["train"], datamodule.splits["val"]
    assert len(train) == round(0.9 * len(TEXT)) and len(train) + len(val) == len(TEXT)
    assert datamodule.vocabulary.decode(val) == TEXT[len(train) :]
    assert datamodule.splits["test"] is val


# --- metric ---------------------------------------------------------------------------------------


def test_bits_per_character_matches_a_hand_computation():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [1.0, 3.0, 0.0]]])
    targets = torch.tensor([[0, 2, IGNORE_INDEX]])

    def bits(row: list[float], target: int) -> float:
        return -math.log2(math.exp(row[target]) / sum(math.exp(v) for v in row))

    expected = (bits([2.0, 0.0, -1.0], 0) + bits([0.5, 0.5, 0.0], 2)) / 2  # padding not scored
    assert bits_per_character(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_validation_bpc_is_every_character_scored_with_the_state_carried(tmp_path):
    datamodule = make_datamodule(tmp_path, eval_batch_size=1, eval_windows=0)  # one stream, chunks of 8
    module = history_module()
    result = quiet_trainer().validate(module, datamodule=datamodule, verbose=False)[0]
    # By hand: the whole validation text in one pass, the running sum carried from the first character to
    # the last; and, for contrast, the same text with the state reset at every chunk of 8.
    ids = datamodule.splits["val"].tolist()
    inputs, targets = ids[:-1], ids[1:]
    carried = [nats(row, target) for row, target in zip(module.net.by_hand(inputs), targets)]
    reset = [
        nats(row, target)
        for start in range(0, len(inputs), 8)
        for row, target in zip(module.net.by_hand(inputs[start : start + 8]), targets[start : start + 8])
    ]
    assert result["val/loss"] == pytest.approx(sum(carried) / len(carried), rel=1e-5)
    assert result["val/bpc"] == pytest.approx(sum(carried) / len(carried) / math.log(2), rel=1e-5)
    assert abs(sum(reset) - sum(carried)) / len(carried) > 0.1  # the two readings differ by far more


def test_window_scores_are_the_mean_over_every_position_of_fresh_windows(tmp_path):
    # 70 windows: two batches (64 + 6), so a state carried from one batch to the next would show.
    datamodule = make_datamodule(tmp_path, eval_windows=70, eval_window_length=10, seed=5)
    module = history_module()
    result = quiet_trainer().validate(module, datamodule=datamodule, verbose=False)[0]
    # By hand: each window (offsets drawn by the datamodule) read from a zero running sum, every one of
    # the 70 x 10 positions scored. Every logit of the toy net depends on the sum: a carried state shows.
    ids = datamodule.splits["val"].tolist()
    starts = datamodule.val_dataloader()[1].starts.tolist()
    assert len(starts) == 70 and len(set(starts)) > 1
    scores = []
    for start in starts:
        inputs, targets = ids[start : start + 10], ids[start + 1 : start + 11]
        scores += [nats(row, target) for row, target in zip(module.net.by_hand(inputs), targets)]
    expected = sum(scores) / len(scores)
    assert len(scores) == 700
    assert result["val/window_nll"] == pytest.approx(expected, rel=1e-5)
    assert result["val/window_bpc"] == pytest.approx(expected / math.log(2), rel=1e-5)
    # The streamed score is logged beside it, and the test stage scores both ways too.
    assert result["val/bpc"] != pytest.approx(result["val/window_bpc"])
    tested = quiet_trainer().test(module, datamodule=datamodule, verbose=False)[0]
    assert tested["test/window_nll"] == pytest.approx(expected, rel=1e-5)


def test_window_scores_are_the_same_every_epoch_and_change_with_the_seed(tmp_path):
    scores = []
    for seed in (1, 1, 2):
        datamodule = make_datamodule(tmp_path, eval_windows=3, eval_window_length=8, seed=seed)
        (result, _) = quiet_trainer().validate(history_module(), datamodule=datamodule, verbose=False)
        scores.append(result["val/window_nll"])
    assert scores[0] == scores[1] != scores[2]


# --- training and sampling ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["stream", "random"])
def test_short_training_lowers_validation_bpc(tmp_path, mode):
    torch.manual_seed(0)
    datamodule = make_datamodule(tmp_path, mode=mode, batch_size=8, time_step=16)
    module = make_module(cell="lstm", embedding_dim=16, hidden_size=32, num_layers=1, lr=1e-2)
    # Without inference mode: epoch means first made under inference mode (trainer.validate's default)
    # cannot be updated by fit's validation, which runs under no_grad (TaskModule makes them lazily).
    before = quiet_trainer(inference_mode=False).validate(module, datamodule=datamodule, verbose=False)[0]
    minutes: list[float] = []

    class RecordMinutes(L.Callback):
        # An epoch's metrics are complete once the next one starts (the module logs after the callbacks).
        def on_train_epoch_start(self, trainer, pl_module):
            if "train/minutes" in trainer.callback_metrics:
                minutes.append(float(trainer.callback_metrics["train/minutes"]))

        def on_train_end(self, trainer, pl_module):
            minutes.append(float(trainer.callback_metrics["train/minutes"]))

    trainer = quiet_trainer(max_epochs=4, callbacks=[RecordMinutes()])
    trainer.fit(module, datamodule=datamodule)
    assert trainer.callback_metrics["train/chars_per_s"] > 0
    # Training minutes so far, logged every epoch, so they grow from epoch to epoch.
    assert len(minutes) == 4 and all(later > earlier > 0 for earlier, later in zip(minutes, minutes[1:]))
    after = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    assert after["val/bpc"] < before["val/bpc"] - 0.5
    assert after["val/window_bpc"] < before["val/window_bpc"] - 0.5


def test_cosine_schedule_anneals_to_the_floor_by_the_last_planned_step(tmp_path):
    datamodule = make_datamodule(tmp_path, batch_size=8, time_step=16)
    module = make_module(
        embedding_dim=8,
        hidden_size=8,
        num_layers=1,
        lr=1e-2,
        scheduler=partial(cosine_decay, min_lr_ratio=0.1),
    )
    seen: list[float] = []

    class RecordRate(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = quiet_trainer(max_epochs=2, callbacks=[RecordRate()])
    trainer.fit(module, datamodule=datamodule)
    assert seen[0] == pytest.approx(1e-2)
    assert all(later < earlier for earlier, later in zip(seen, seen[1:]))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3)  # lr * min_lr_ratio


def test_the_task_config_clips_gradients_and_anneals_whatever_the_trainer_preset():
    for trainer in ("default", "cpu"):
        cfg = compose_config(["task=charlm", f"trainer={trainer}"])
        assert cfg.trainer.gradient_clip_val == 1.0
        assert cfg.trainer.max_epochs == 7
        assert cfg.model.scheduler._target_ == "hw2lab.training.cosine_decay"
    cfg = compose_config(["task=charlm", "trainer.gradient_clip_val=null", "model.scheduler=null"])
    assert cfg.trainer.gradient_clip_val is None and cfg.model.scheduler is None


def test_weight_decay_is_decoupled_and_spares_biases_and_the_embedding():
    # With no gradient, AdamW shrinks every decayed weight by exactly lr * weight_decay of itself (Adam's L2
    # term would instead move each weight by about lr, whatever its size); biases and the embedding stay.
    module = make_module(hidden_size=8, num_layers=1, lr=0.1, weight_decay=0.5, vocabulary="abc")
    optimizer = module.configure_optimizers()
    before = {name: parameter.detach().clone() for name, parameter in module.named_parameters()}
    for parameter in module.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    decayed = {"net.rnn.weight_ih_l0", "net.rnn.weight_hh_l0", "net.head.weight"}
    for name, parameter in module.named_parameters():
        expected = before[name] * (1 - 0.1 * 0.5) if name in decayed else before[name]
        torch.testing.assert_close(parameter.detach(), expected, msg=name)


def trained_module(tmp_path: Path) -> CharLMModule:
    datamodule = make_datamodule(tmp_path)
    datamodule.setup()
    torch.manual_seed(0)
    return make_module(
        cell="gru", embedding_dim=8, hidden_size=16, num_layers=2, vocabulary=datamodule.vocabulary.characters
    )


def test_sampling_is_deterministic_under_a_seed(tmp_path):
    module = trained_module(tmp_path)
    draws = [
        module.sample(
            "ROMEO",
            60,
            temperature=0.9,
            top_k=5,
            generator=torch.Generator().manual_seed(seed),
            context="NCTU is good.\n",
        )
        for seed in (7, 7, 8)
    ]
    assert draws[0] == draws[1] != draws[2]
    assert all(draw.startswith("ROMEO") and len(draw) == 65 for draw in draws)


def test_a_checkpoint_alone_rebuilds_the_model(tmp_path):
    # The net, optimiser and schedule travel as their configs (plain values: the checkpoint loads with
    # weights_only), the vocabulary beside the weights.
    datamodule = make_datamodule(tmp_path)
    module = make_module(
        cell="gru",
        embedding_dim=8,
        hidden_size=16,
        num_layers=1,
        scheduler=partial(cosine_decay, min_lr_ratio=0.1),
    )
    trainer = quiet_trainer(max_steps=2, limit_val_batches=1)
    trainer.fit(module, datamodule=datamodule)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = CharLMModule.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True)
    assert (
        loaded.saved_hparams["net"]["cell"] == "gru"
        and loaded.vocabulary.characters == module.vocabulary.characters
    )
    assert loaded.saved_hparams["scheduler"]["_target_"] == "hw2lab.training.cosine_decay"
    sample = partial(module.sample, "NCTU", 20, generator=torch.Generator().manual_seed(1))
    assert loaded.sample("NCTU", 20, generator=torch.Generator().manual_seed(1)) == sample()
    # A checkpoint cannot make the module call just any function.
    with pytest.raises(HW2LabError, match="model.net may only name targets under"):
        CharLMModule(net={"_target_": "os.system", "_partial_": True}, optimizer=torch.optim.AdamW)


def test_sampling_context_ends_at_the_last_blank_line():
    assert paragraph_context("ROMEO:\nHi.\n\nJULIET:\nHo.\n\nNurse:\nHa", 13) == "JULIET:\nHo.\n\n"
    assert paragraph_context("no blank line", 5) == " line"


@pytest.mark.parametrize("net", [HistoryNet, WindowNet])
def test_top_k_one_and_greedy_feed_back_their_own_choice(tmp_path, net):
    datamodule = make_datamodule(tmp_path)
    datamodule.setup()
    optimizer = partial(torch.optim.SGD, lr=0.1)
    module = for_text(CharLMModule(net=net, optimizer=optimizer), datamodule.vocabulary.characters)
    context = "NCTU is good.\n"  # longer than the windowed net's 8 characters: it reads the last 8 only
    greedy = module.sample("NCTU", 30, greedy=True, context=context)
    same = module.sample("NCTU", 30, top_k=1, generator=torch.Generator().manual_seed(3), context=context)
    assert same == greedy and greedy.startswith("NCTU") and len(greedy) == 34
    # Each greedy character is the argmax after reading everything before it from scratch (the windowed
    # net: the last 8 characters), so the incremental loop fed the right character (and state, or window)
    # back at every step. The toy nets' argmax is the running sum of every id read: a wrong feed-back shows.
    vocabulary, text = module.vocabulary, context + greedy
    window = module.net.context_size or len(text)
    with torch.no_grad():
        for position in range(len(context) + 4, len(text)):
            logits, _ = module.net(vocabulary.encode(text[max(0, position - window) : position])[None])
            assert vocabulary.characters[int(logits[0, -1].argmax())] == text[position]


# --- the GPT -------------------------------------------------------------------------------------


def test_gpt_attention_is_causal():
    torch.manual_seed(0)
    net = GPT(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0).eval()
    ids = torch.randint(0, 11, (2, 12))
    changed = ids.clone()
    changed[:, 7] = (ids[:, 7] + 1) % 11  # a later character differs
    with torch.no_grad():
        before, state = net(ids)
        after, _ = net(changed)
    assert state is None and before.shape == (2, 12, 11)
    torch.testing.assert_close(after[:, :7], before[:, :7])  # what came before cannot see it
    assert not torch.allclose(after[:, 7:], before[:, 7:])  # from there on it is read


def test_gpt_ties_its_embedding_to_the_read_out_and_decays_2d_weights_once():
    net = GPT(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16)
    assert net.wte.weight is net.lm_head.weight
    # nanoGPT's initialisation: N(0, 0.02), the residual projections scaled down by sqrt(2 n_layer).
    assert net.h[0].attn.c_proj.weight.std().item() < net.h[0].attn.c_attn.weight.std().item()
    decayed, kept = parameter_groups(net)
    names = {id(p): name for name, p in net.named_parameters()}
    assert sorted(names[id(p)] for p in decayed["params"]) == sorted(
        name for name, p in net.named_parameters() if p.ndim == 2 and name != "wpe.weight"
    )
    assert {names[id(p)] for p in kept["params"]} >= {"wpe.weight", "ln_f.weight", "h.0.ln_1.weight"}
    assert len(decayed["params"]) + len(kept["params"]) == len(list(net.parameters()))  # the tie counted once


def test_gpt_streamed_score_reads_each_block_on_its_own(tmp_path):
    # With time_step = block_size, the stream is cut into blocks of 8 that the GPT reads afresh: the
    # streamed score is the mean over the blocks of the GPT's loss on each, from its own start.
    datamodule = make_datamodule(tmp_path, eval_batch_size=1, eval_windows=0, time_step=8)
    datamodule.setup()
    torch.manual_seed(0)
    module = make_gpt(datamodule.vocabulary.characters, block_size=8)
    result = quiet_trainer().validate(module, datamodule=datamodule, verbose=False)[0]
    ids = datamodule.splits["val"]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 8):
            inputs, targets = ids[start : start + 8][None], ids[start + 1 : start + 9][None]
            inputs = inputs[:, : targets.shape[1]]
            logits, _ = module.net(inputs)
            total += F.cross_entropy(logits[0], targets[0], reduction="sum").item()
            count += targets.numel()
    assert result["val/loss"] == pytest.approx(total / count, rel=1e-5)


def test_gpt_shorter_than_the_windows_or_the_chunks_is_a_user_error(tmp_path):
    datamodule = make_datamodule(tmp_path, time_step=8, eval_window_length=16)
    with pytest.raises(
        HW2LabError, match=r"windows \(data.eval_window_length 16\) are longer than the net's"
    ):
        quiet_trainer().validate(make_gpt(block_size=8), datamodule=datamodule, verbose=False)
    datamodule = make_datamodule(tmp_path, time_step=16, eval_window_length=8)
    with pytest.raises(HW2LabError, match="time_step 16 is longer than the net's context"):
        quiet_trainer().validate(make_gpt(block_size=8), datamodule=datamodule, verbose=False)
    with pytest.raises(HW2LabError, match="must be a multiple of model.net.n_head"):
        GPT(vocab_size=5, n_head=3, n_embd=16)


def test_warmup_then_cosine_to_the_floor_at_the_last_planned_step():
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine_decay(optimizer, total_steps=20, warmup_steps=4, min_lr_ratio=0.1)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # linear warm-up to the peak
    assert all(later < earlier for earlier, later in zip(rates[4:], rates[5:]))
    assert rates[-1] == pytest.approx(0.1)  # the floor at the last planned step
    assert rates[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 8 / 15)))


def test_the_gpt_trains_a_few_batches_through_the_task_config(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_text(data_dir, name="plays.txt")
    monkeypatch.setenv("HW2LAB_DATA_DIR", str(data_dir))
    overrides = [
        "task=charlm",
        "model=charlm_gpt",
        "data.file=plays.txt",
        "time_step=16",
        "data.batch_size=4",
        "data.eval_windows=6",
        "data.eval_window_length=16",
        "model.net.n_layer=1",
        "model.net.n_head=2",
        "model.net.n_embd=16",
        "model.scheduler.warmup_steps=2",
        "sample_length=30",
        "prime=NCTU",
        "trainer=debug",
        "logger=none",
    ]
    cfg = compose_config(overrides, tmp_path / "run")
    assert cfg.mode == "random" and cfg.model.net.block_size == 16  # the GPT trains on windows of its context
    result = fit_and_test(cfg, tmp_path / "run")
    assert result["global_step"] == 3
    metrics = result["metrics"]
    assert {"val/bpc", "val/window_bpc", "test/window_nll", "train/minutes"} <= set(metrics)
    assert (tmp_path / "run" / "figures" / "sample.txt").read_text().startswith("NCTU")
    loaded = CharLMModule.load_from_checkpoint(
        tmp_path / "run" / result["best_checkpoint"], weights_only=True
    )
    assert (
        loaded.saved_hparams["scheduler"]["_target_"] == "lightning_modules.charlm.module.warmup_cosine_decay"
    )
    assert isinstance(loaded.net, GPT) and loaded.sample("NCTU", 5, greedy=True).startswith("NCTU")


def test_the_comparison_draws_validation_against_training_minutes(tmp_path):
    jobs = []
    for number, label in enumerate(("experiment=charlm_15min_lstm", "experiment=charlm_15min_gpt")):
        job_dir = tmp_path / str(number)
        job_dir.mkdir()
        (job_dir / "history.csv").write_text(
            "epoch,train/minutes,val/bpc,val/window_bpc\n0,1.5,2.6,2.7\n1,3.1,2.3,2.4\n", encoding="utf-8"
        )
        jobs.append(JobRecord(dir=job_dir, number=number, status="ok", overrides=[label], label=label))
    path = compare_models(jobs, tmp_path)
    assert path == tmp_path / "comparison.png" and path.stat().st_size > 1000
    (tmp_path / "0" / "history.csv").write_text("epoch,val/bpc\n0,2.6\n", encoding="utf-8")
    with pytest.raises(KeyError, match="train/minutes"):  # no silent epoch axis for a history without minutes
        compare_models(jobs, tmp_path)


# --- bad input ------------------------------------------------------------------------------------


def test_missing_and_empty_and_non_utf8_files_are_user_errors(tmp_path):
    with pytest.raises(HW2LabError, match="missing dataset file"):
        CharTextDataModule(data_dir=str(tmp_path), file="nope.txt").setup()
    with pytest.raises(HW2LabError, match="is empty"):
        make_datamodule(tmp_path, "").setup()
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1") * 50)
    with pytest.raises(HW2LabError, match="not UTF-8"):
        CharTextDataModule(data_dir=str(tmp_path), file="latin1.txt").setup()


def test_time_step_larger_than_the_text_is_a_user_error(tmp_path):
    with pytest.raises(HW2LabError, match="time_step 500 is larger than the training text"):
        make_datamodule(tmp_path, "NCTU is good\n" * 10, time_step=500).setup()


def test_bad_config_values_fail_in_constructors(tmp_path):
    with pytest.raises(HW2LabError, match="cell must be one of"):
        make_module(cell="transformer")
    with pytest.raises(HW2LabError, match="mode"):
        make_datamodule(tmp_path, mode="shuffled")
    with pytest.raises(HW2LabError, match="split"):
        make_datamodule(tmp_path, split=[0.5, 0.2])
    with pytest.raises(HW2LabError, match="temperature"):
        TextSamples(figures_dir=str(tmp_path), temperature=0)


def test_prime_outside_the_vocabulary_is_a_clear_error(tmp_path):
    module = trained_module(tmp_path)
    with pytest.raises(HW2LabError, match=r"prime 'Ωmega' has characters .* not in the vocabulary.*'Ω'"):
        module.sample("Ωmega", 10)
    # The sampling callback checks its prime as soon as the text is read, before the first epoch.
    datamodule = make_datamodule(tmp_path)
    callback = TextSamples(figures_dir=str(tmp_path / "figures"), prime="Zounds")
    trainer = quiet_trainer(max_epochs=1, callbacks=[callback])
    with pytest.raises(HW2LabError, match="the prime 'Zounds' has characters .* 'Zu'"):
        trainer.fit(make_module(hidden_size=8, num_layers=1), datamodule=datamodule)


# --- real data ------------------------------------------------------------------------------------


def test_real_tiny_shakespeare(real_data_dir):
    datamodule = CharTextDataModule(data_dir=str(real_data_dir), file="tiny_shakespeare/input.txt")
    datamodule.setup()
    assert len(datamodule.vocabulary) == 65
    assert len(datamodule.splits["train"]) == 1003855 and len(datamodule.splits["val"]) == 111539
    assert datamodule.vocabulary.decode(datamodule.splits["train"][:14]) == "First Citizen:"
    datamodule.vocabulary.encode("ROMEO")
    first = next(iter(datamodule.train_dataloader()))
    assert first.inputs.shape == (32, 64) and first.reset


# --- end to end -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cell_sweep_end_to_end(cli, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_text(data_dir, name="plays.txt")
    result = cli(
        [
            "-m",
            "task=charlm",
            "cell=rnn,lstm",
            "data.file=plays.txt",
            "data.batch_size=4",
            "time_step=16",
            "model.net.hidden_size=16",
            "model.net.embedding_dim=8",
            "model.net.num_layers=1",
            "sample_length=40",
            "prime=NCTU",
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=6",
        ],
        data_dir=data_dir,
    )
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        run_dir = sweep / job
        metrics = assert_run_outputs(run_dir, figures=["learning_curves"])
        assert {"val/bpc", "train/bpc", "test/bpc"} <= set(metrics["metrics"])
        assert (run_dir / "figures" / "samples" / "epoch_002.txt").read_text().startswith("NCTU")
        assert (run_dir / "figures" / "sample.txt").read_text().startswith("NCTU")
        assert (run_dir / "figures" / "sample_greedy.txt").read_text().startswith("NCTU")
        module = CharLMModule.load_from_checkpoint(run_dir / metrics["best_checkpoint"])
        assert module.sample("NCTU", 5, greedy=True).startswith("NCTU")
    cells = [
        json.loads((sweep / job / "metrics.json").read_text())["hparams"]["model.net.cell"] for job in "01"
    ]
    assert cells == ["rnn", "lstm"]
    summary = (sweep / "summary.md").read_text()
    assert (sweep / "summary.csv").is_file() and "val/bpc" in summary
    assert "## Samples after training" in summary and "```\nNCTU" in summary
    assert (sweep / "comparison.png").stat().st_size > 1000, result.stderr[-2000:]


@pytest.mark.slow
def test_bad_cell_on_the_command_line_is_one_line(cli, tmp_path):
    result = cli(["task=charlm", "cell=transformer"], data_dir=tmp_path, expect_ok=False)
    assert result.returncode != 0
    assert "cell must be one of" in result.stderr and "Traceback" not in result.stderr
