"""The char-LM task: batching, BPC, training, sampling, bad input, real data, and a cell sweep end to end."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import assert_run_outputs, compose_config, quiet_trainer

from callbacks.charlm import TextSamples, paragraph_context
from datamodules.charlm import (
    IGNORE_INDEX,
    CharTextDataModule,
    RandomWindows,
    StreamChunks,
    Vocabulary,
)
from hw2lab.errors import HW2LabError
from hw2lab.training import cosine_decay
from lightning_modules.charlm import CharLMModule, CharRNN, bits_per_character

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
    options = {"batch_size": 4, "time_step": 8, "eval_batch_size": 3, **kwargs}
    return CharTextDataModule(data_dir=str(tmp_path), file=path.name, **options)


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
    return CharLMModule(
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
        vocabulary=vocabulary,
    )


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
    datamodule = make_datamodule(tmp_path, eval_batch_size=1)  # one stream, read in chunks of 8
    module = make_module(cell="lstm", embedding_dim=8, hidden_size=16, num_layers=1)
    (result,) = quiet_trainer().validate(module, datamodule=datamodule, verbose=False)
    # By hand: the whole validation text in one pass, so the state runs from the first to the last character.
    ids = datamodule.splits["val"]
    with torch.no_grad():
        logits, _ = module.net(ids[None, :-1])
        log_probs = torch.log_softmax(logits[0].double(), dim=-1)
    bits = -log_probs[torch.arange(len(ids) - 1), ids[1:]].sum().item() / math.log(2)
    assert result["val/bpc"] == pytest.approx(bits / (len(ids) - 1), rel=1e-4)


# --- training and sampling ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["stream", "random"])
def test_short_training_lowers_validation_bpc(tmp_path, mode):
    torch.manual_seed(0)
    datamodule = make_datamodule(tmp_path, mode=mode, batch_size=8, time_step=16)
    module = make_module(cell="lstm", embedding_dim=16, hidden_size=32, num_layers=1, lr=1e-2)
    # Without inference mode: epoch means first made under inference mode (trainer.validate's default)
    # cannot be updated by fit's validation, which runs under no_grad (TaskModule makes them lazily).
    (before,) = quiet_trainer(inference_mode=False).validate(module, datamodule=datamodule, verbose=False)
    trainer = quiet_trainer(max_epochs=4)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.callback_metrics["train/chars_per_s"] > 0
    (after,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    assert after["val/bpc"] < before["val/bpc"] - 0.5


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
        loaded.hparams["net"]["cell"] == "gru"
        and loaded.vocabulary.characters == module.vocabulary.characters
    )
    assert loaded.hparams["scheduler"]["_target_"] == "hw2lab.training.cosine_decay"
    sample = partial(module.sample, "NCTU", 20, generator=torch.Generator().manual_seed(1))
    assert loaded.sample("NCTU", 20, generator=torch.Generator().manual_seed(1)) == sample()
    # A checkpoint cannot make the module call just any function.
    with pytest.raises(HW2LabError, match="model.net from a mapping must be a _partial_ target"):
        CharLMModule(net={"_target_": "os.system", "_partial_": True}, optimizer=torch.optim.AdamW)


def test_sampling_context_ends_at_the_last_blank_line():
    assert paragraph_context("ROMEO:\nHi.\n\nJULIET:\nHo.\n\nNurse:\nHa", 13) == "JULIET:\nHo.\n\n"
    assert paragraph_context("no blank line", 5) == " line"


def test_top_k_one_and_greedy_feed_back_their_own_choice(tmp_path):
    module = trained_module(tmp_path)
    greedy = module.sample("NCTU", 30, greedy=True)
    assert module.sample("NCTU", 30, top_k=1, generator=torch.Generator().manual_seed(3)) == greedy
    # Each greedy character is the argmax after reading everything before it from scratch, so the
    # incremental loop fed the right character (and state) back at every step.
    vocabulary = module.vocabulary
    with torch.no_grad():
        for position in range(4, len(greedy)):
            logits, _ = module.net(vocabulary.encode(greedy[:position])[None])
            assert vocabulary.characters[int(logits[0, -1].argmax())] == greedy[position]


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
