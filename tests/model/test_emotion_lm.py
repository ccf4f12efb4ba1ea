"""The emotion LM on a tiny random causal LM (fast) and on the built-in SmolLM2 (slow)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emotune.data.labels import LabelSet, load_label_set
from emotune.errors import EmotuneError
from emotune.model import lm_net
from emotune.model.emotion_lm import EmotionLM
from emotune.model.lm_config import LMConfig, LoRAConfig
from emotune.train.config import TrainConfig
from tests.model.tiny import make_tiny_lm, random_examples
from tests.tolerance import network_chain, tol

RAVDESS = list(load_label_set("ravdess").names)
SHAPES = {"whisper_seq": (5, 16), "egemaps": (88,)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def make(backbone, labels=RAVDESS, shapes=SHAPES, target="single", lora=True, train=None, **lm):
    cfg = LMConfig(backbone=str(backbone), dtype="fp32", tokens=3, lora=LoRAConfig(enabled=lora, r=4), **lm)
    tc = TrainConfig(**{"epochs": 1, "batch_size": 8, "lr": 1e-2, "bf16": False, "progress": False, **(train or {})})
    model = EmotionLM(labels, list(shapes), shapes, cfg, tc, target=target, seed=0)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0); make it matter for the equivalence checks
        for name, p in model.net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model


def test_splice_puts_projected_tokens_exactly_at_the_placeholders(tiny_dir):
    model = make(tiny_dir)
    ex = random_examples(4, RAVDESS, SHAPES, seed=0)
    ex.features["egemaps"][1] = None
    t = model.templates[0]
    batch = model.batcher.collate([model.batcher.row(ex, i, t) for i in range(4)], share_prefix=False)
    embeds = model.net.embed(batch)
    plain = model.net.base.get_input_embeddings()(batch.ids)
    assert torch.equal(embeds[~batch.slot_mask], plain[~batch.slot_mask])
    # Row 1 (egemaps missing) has 5 whisper rows; the others 5 + 3 egemaps tokens, whisper first.
    assert batch.slot_mask.sum(1).tolist() == [8, 5, 8, 8]
    seq = model.net.projectors["whisper_seq"](torch.as_tensor(ex.features["whisper_seq"][2]))[:, 0]
    vec = model.net.projectors["egemaps"](torch.as_tensor(ex.features["egemaps"][2])[None])[0]
    ref = torch.cat([seq, vec])  # the projectors on this row alone: other GEMM shapes than in the batch of 4
    torch.testing.assert_close(embeds[2][batch.slot_mask[2]], ref,
                               **tol(torch.float32, network_chain(model.net.projectors), float(ref.abs().max())))
    text = model.batcher.renderer.text(t, {"whisper_seq": 5}, ex.texts[1], ())
    assert "Acoustic (eGeMAPS) features (egemaps): missing" in text


def test_one_splice_for_training_scoring_and_generation(tiny_dir, tmp_path, monkeypatch):
    model = make(tiny_dir)
    ex = random_examples(8, RAVDESS, SHAPES, seed=0)
    calls = []
    real = lm_net.splice
    monkeypatch.setattr(lm_net, "splice", lambda *a: calls.append(1) or real(*a))
    model.fit(ex, ex.subset([]), tmp_path)
    assert len(calls) == 1  # one batch of 8
    model.predict_proba(ex)
    assert len(calls) == 2
    model.generate(ex, max_new_tokens=2)
    assert len(calls) == 3


def test_missing_modality_drops_its_tokens_and_dropout_never_empties_a_prompt(tiny_dir):
    model = make(tiny_dir, modality_dropout=1.0)
    ex = random_examples(6, RAVDESS, SHAPES, seed=0)
    ex.texts[:3] = ["", "", ""]
    full = model.batcher.row(ex, 0, model.templates[0])
    batch = model.make_batch(ex, np.arange(6), torch.Generator().manual_seed(0))
    kept = batch.slot_mask.sum(1).tolist()
    assert all(k in (5, 3) for k in kept[:3])  # no transcript: one input is always kept
    assert kept[3:] == [0, 0, 0]  # a transcript remains: every input may go
    shorter = model.batcher.row(ex, 0, model.templates[0], keep={"whisper_seq"})
    assert len(full.slots) - len(shorter.slots) == 3


def test_grouped_layout_puts_every_feature_token_last_in_input_order(tiny_dir):
    lines, grouped = make(tiny_dir), make(tiny_dir, input_layout="grouped")
    ex = random_examples(3, RAVDESS, SHAPES, seed=0)
    ex.features["egemaps"][1] = None
    t = lines.templates[0]
    for i in range(3):
        a, b = lines.batcher.row(ex, i, t), grouped.batcher.row(ex, i, t)
        assert [n for _, n in a.slots] == [n for _, n in b.slots]  # same tokens, same order
        pos = [p for p, _ in b.slots]
        assert pos == list(range(pos[0], pos[0] + len(pos)))  # adjacent
        # What follows the first feature token is recomputed per sample: grouped leaves less of it.
        assert len(b.ids) - pos[0] <= len(a.ids) - a.slots[0][0]
    assert len(grouped.batcher.row(ex, 0, t).ids) - grouped.batcher.row(ex, 0, t).slots[0][0] < \
        len(lines.batcher.row(ex, 0, t).ids) - lines.batcher.row(ex, 0, t).slots[0][0]
    text = grouped.batcher.renderer.text(t, {"whisper_seq": 5}, "", ())
    assert "Acoustic (eGeMAPS) features (egemaps): missing" in text  # still told what it lacks
    # The same splice fills the grouped slots: training and scoring run on them.
    probs = grouped.predict_proba(ex)
    assert probs.shape == (3, len(RAVDESS)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    with pytest.raises(EmotuneError, match="input_layout"):
        LMConfig(input_layout="columns")


def test_assistant_layout_opens_the_answer_with_the_feature_tokens(tiny_dir):
    layout = make(tiny_dir, input_layout="assistant")
    ex = random_examples(4, RAVDESS, SHAPES, seed=1)
    ex.texts = [""] * 4  # a fixed instruction: everything before the features is shared
    ex.features["egemaps"][2] = None
    t = layout.templates[0]
    prefix_ids = layout.tokenizer(t.answer_prefix, add_special_tokens=False).input_ids
    rows = [layout.batcher.row(ex, i, t) for i in range(4)]
    for r in rows:
        pos = [p for p, _ in r.slots]
        end = len(r.ids) - len(prefix_ids)
        assert pos == list(range(end - len(pos), end))  # right before the answer prefix, adjacent
        assert r.ids[end:] == prefix_ids and r.score_at == len(r.ids) - 1  # the label follows the prefix
    text = layout.batcher.renderer.text(t, {"whisper_seq": 5}, "", ())
    assert text.index("<|im_start|>assistant") < text.index("\ue000whisper_seq:5") < text.rindex(t.answer_prefix)
    assert "Acoustic (eGeMAPS) features (egemaps): missing" in text
    # Per sample only the feature tokens and the answer prefix are left once the shared prefix is cut.
    same = [rows[i] for i in (0, 1, 3)]
    assert layout.batcher.collate(same).ids.shape[1] == len(same[0].slots) + len(prefix_ids)
    probs = layout.predict_proba(ex)
    assert probs.shape == (4, len(RAVDESS)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert all(a.startswith(t.answer_prefix) for a in layout.generate(ex, max_new_tokens=2))


def test_feature_noise_perturbs_training_inputs_only(tiny_dir):
    model = make(tiny_dir, feature_noise=0.5)
    proj = model.net.projectors["egemaps"]
    x = torch.randn(4, 88)
    proj.eval()
    clean = proj(x)
    torch.testing.assert_close(proj(x), clean, rtol=0, atol=0)  # evaluation: deterministic, no noise
    proj.train()
    assert not torch.allclose(proj(x), clean)
    assert make(tiny_dir).net.projectors["egemaps"].noise == 0.0  # off by default
    with pytest.raises(EmotuneError, match="feature_noise"):
        LMConfig(feature_noise=-0.1)


def test_mixup_mixes_vector_features_and_targets_by_the_same_weight(tiny_dir, tmp_path):
    shapes = {"egemaps": (88,), "whisper": (12,)}
    model = make(tiny_dir, shapes=shapes, mixup=0.4)
    ex = random_examples(8, RAVDESS, shapes, seed=2)
    ex.features["whisper"][5] = None  # the only row without whisper: no partner has its inputs, it stays whole
    batch = model.make_batch(ex, np.arange(8), torch.Generator().manual_seed(0))
    T = batch.targets
    assert T.shape == (8, len(RAVDESS)) and torch.allclose(T.sum(1), torch.ones(8))
    onehot = F.one_hot(torch.as_tensor(ex.y).long(), len(RAVDESS)).float()
    egemaps = dict(zip(batch.owners["egemaps"], batch.features["egemaps"]))
    mixed = 0
    for b in range(8):
        x, own = egemaps[b], ex.features["egemaps"][b]
        if np.array_equal(x, own):  # left whole (or mixed with itself): its own target
            torch.testing.assert_close(T[b], onehot[b])
            continue
        mixed += 1
        # x = l·own + (1 - l)·partner for exactly one partner j, and the target is mixed by that same l.
        fits = []
        for j in range(8):
            d = own - ex.features["egemaps"][j]
            if j == b or not d.any():
                continue
            lam = float(np.dot(x - ex.features["egemaps"][j], d) / np.dot(d, d))
            if np.allclose(x, lam * own + (1 - lam) * ex.features["egemaps"][j], atol=1e-5):
                fits.append((j, lam))
        assert len(fits) == 1, fits
        j, lam = fits[0]
        assert 0.5 <= lam <= 1 and j != 5
        torch.testing.assert_close(T[b], lam * onehot[b] + (1 - lam) * onehot[j], rtol=0, atol=1e-5)
        w = dict(zip(batch.owners["whisper"], batch.features["whisper"]))[b]
        np.testing.assert_allclose(w, lam * ex.features["whisper"][b] + (1 - lam) * ex.features["whisper"][j], atol=1e-5)
    assert mixed >= 3 and np.array_equal(egemaps[5], ex.features["egemaps"][5])
    assert np.isfinite(model.fit(ex, ex.subset([]), tmp_path)["history"][-1]["train_loss"])
    # Off by default: class indices, features as cached.
    plain = make(tiny_dir, shapes=shapes).make_batch(ex, np.arange(8), torch.Generator().manual_seed(0))
    assert plain.targets.ndim == 1 and all(np.array_equal(a, ex.features["egemaps"][o]) for a, o in
                                           zip(plain.features["egemaps"], plain.owners["egemaps"]))
    with pytest.raises(EmotuneError, match="mixup"):
        LMConfig(mixup=-1)


def test_mixup_mixes_equal_shaped_sequences_row_by_row_and_leaves_unequal_lengths_whole(tiny_dir):
    shapes = {"grid": (4, 6), "egemaps": (88,)}
    model = make(tiny_dir, shapes=shapes, mixup=0.4)
    ex = random_examples(8, RAVDESS, shapes, seed=3)
    ex.features["grid"][6] = ex.features["grid"][6][:3]  # a shorter sequence: no partner shares its shape
    batch = model.make_batch(ex, np.arange(8), torch.Generator().manual_seed(1))
    onehot = F.one_hot(torch.as_tensor(ex.y).long(), len(RAVDESS)).float()
    grid = dict(zip(batch.owners["grid"], batch.features["grid"]))
    egemaps = dict(zip(batch.owners["egemaps"], batch.features["egemaps"]))
    mixed = 0
    for b in range(8):
        own_vec = ex.features["egemaps"][b]
        if np.array_equal(egemaps[b], own_vec):
            assert np.array_equal(grid[b], ex.features["grid"][b])
            torch.testing.assert_close(batch.targets[b], onehot[b])
            continue
        mixed += 1
        # The vector input tells the partner and the weight; the grid must be mixed by the same ones, cell by cell.
        fits = [(j, float(np.dot(egemaps[b] - ex.features["egemaps"][j], own_vec - ex.features["egemaps"][j])
                          / np.dot(own_vec - ex.features["egemaps"][j], own_vec - ex.features["egemaps"][j])))
                for j in range(8) if j != b]
        j, lam = next((j, lam) for j, lam in fits if np.allclose(
            egemaps[b], lam * own_vec + (1 - lam) * ex.features["egemaps"][j], atol=1e-5))
        assert 6 not in (b, j)
        np.testing.assert_allclose(grid[b], lam * ex.features["grid"][b] + (1 - lam) * ex.features["grid"][j], atol=1e-5)
        torch.testing.assert_close(batch.targets[b], lam * onehot[b] + (1 - lam) * onehot[j], rtol=0, atol=1e-5)
    assert mixed >= 3
    assert np.array_equal(grid[6], ex.features["grid"][6]) and np.array_equal(egemaps[6], ex.features["egemaps"][6])


def test_lowrank_projector_maps_through_rank_dimensions(tiny_dir):
    model = make(tiny_dir, projector="lowrank", projector_rank=3)
    proj = model.net.projectors["egemaps"].eval()
    assert [tuple(p.shape) for p in proj.net.parameters()] == [(3, 88), (3,), (proj.tokens * proj.hidden_size, 3), (proj.tokens * proj.hidden_size,)]
    # Every output before the RMS norm lies in a 3-dim affine subspace, whatever the input.
    pre = proj.net((torch.randn(20, 88) - proj.mean) / proj.std)
    assert torch.linalg.matrix_rank(pre - pre[:1]).item() <= 3
    assert model.predict_proba(random_examples(2, RAVDESS, SHAPES, seed=3)).shape == (2, len(RAVDESS))
    with pytest.raises(EmotuneError, match="projector_rank"):
        LMConfig(projector_rank=0)


@pytest.mark.parametrize("attention,packed", [("eager", True), ("sdpa", True), ("eager", False)])
def test_prefix_sharing_and_multi_token_labels_match_a_plain_forward(tiny_dir, attention, packed, monkeypatch):
    """Multi-token labels continue each row's cache, all labels of a row packed into one sequence behind it (or,
    for kernels that take no custom mask, on one copy of the cache per label)."""
    if not packed:
        monkeypatch.setattr(lm_net, "MASK_KERNELS", ())
    labels = list(load_label_set("goemotions").names)[:6]
    model = make(tiny_dir, labels=labels, attention=attention)
    assert not model.net.single_token  # the tiny tokenizer splits some of these labels
    ex = random_examples(5, labels, SHAPES, seed=1, missing=0.3)
    rows = [model.batcher.row(ex, i, model.templates[0]) for i in range(5)]
    with torch.no_grad():
        shared_batch = model.batcher.collate(rows)
        assert len(shared_batch.prefix) > 0
        shared = model.net.class_logits(shared_batch)
        plain = model.net.class_logits(model.batcher.collate(rows, share_prefix=False))
        brute = torch.zeros_like(shared)
        for i, r in enumerate(rows):
            emb = model.net.embed(model.batcher.collate([r], share_prefix=False))
            per_spelling = []
            for toks in model.net.label_seqs:
                x = torch.cat([emb, model.net.base.get_input_embeddings()(torch.tensor([toks]))], 1)
                logp = F.log_softmax(model.net.base(inputs_embeds=x).logits[0].float(), -1)
                per_spelling.append(sum(logp[emb.shape[1] - 1 + j, t] for j, t in enumerate(toks)))
            brute[i] = torch.logsumexp(torch.stack(per_spelling)[None] + model.net.owner, -1)
    # Cached prefix vs one pass vs one row at a time: the same LM forward (fp32) summed in other orders. A
    # label's score sums its tokens' log-probabilities z - logsumexp(z), each rounded relative to the
    # normaliser, ~log(vocab) for this random LM: scale log(vocab), and rtol * |score| for several tokens.
    seq = len(shared_batch.prefix) + shared_batch.ids.shape[1] + max(map(len, model.net.label_seqs))
    vocab = model.net.base.config.vocab_size
    close = tol(torch.float32, network_chain(model.net, seq, vocab), math.log(vocab))
    torch.testing.assert_close(shared, plain, **close)
    torch.testing.assert_close(shared, brute, **close)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_packed_rows_compute_what_the_batched_rows_do(tiny_dir, attention):
    """Short rows after a long shared prefix are laid end to end as one sequence (block-diagonal mask):
    the same hidden states as the batched form, padding included, and gradients reach the projectors."""
    model = make(tiny_dir, input_layout="assistant", lora=False, attention=attention)
    ex = random_examples(6, RAVDESS, SHAPES, seed=2)
    ex.texts = [""] * 6
    ex.features["whisper_seq"][4] = ex.features["whisper_seq"][4][:2]  # a shorter row: right padding
    rows = [model.batcher.row(ex, i, model.templates[0], answer=RAVDESS[i]) for i in range(6)]
    batch = model.batcher.collate(rows)
    B, S = batch.ids.shape
    assert S <= lm_net.PACK_MAX_ROW and B * S <= lm_net.PACK_MAX_TOKENS  # the case packing takes
    embeds = model.net.embed(batch)
    packed = model.net._packed_hidden(batch, embeds)
    batched, _ = model.net.hidden(batch, keep_cache=True)  # keep_cache: the batched form
    real = torch.tensor([[j < len(r.ids) - len(batch.prefix) for j in range(S)] for r in rows])
    n = network_chain(model.net, len(batch.prefix) + S)
    torch.testing.assert_close(packed[real], batched[real], **tol(torch.float32, n, float(batched.abs().max())))
    model.net.hidden(batch)[0][real].sum().backward()  # hidden() packs this batch
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.projectors.parameters() if p.requires_grad)


@pytest.mark.parametrize("target", ["single", "soft", "multi"])
def test_targets_train_and_give_probabilities(tiny_dir, tmp_path, target):
    model = make(tiny_dir, target=target)
    train, val = random_examples(16, RAVDESS, SHAPES, seed=0), random_examples(8, RAVDESS, SHAPES, seed=1)
    history = model.fit(train, val, tmp_path)
    assert np.isfinite(history["history"][0]["train_loss"])
    probs = model.predict_proba(val)
    assert probs.shape == (8, 8) and (probs >= 0).all() and (probs <= 1).all()
    if target == "multi":
        assert not np.allclose(probs.sum(1), 1.0)  # independent per label
        assert "val_map" in history["history"][0]
    else:
        # fp32 softmax (a sum of 8 exps) then this sum of 8: 16 roundings.
        np.testing.assert_allclose(probs.sum(1), 1.0, **tol(np.float32, 2 * 8))
    if target == "multi":  # the next-token loss taught the canonical-order list as the answer
        batch = model.make_batch(train, [0], torch.Generator())
        answer = model.tokenizer.decode(batch.lm_targets)
        assert answer.strip().startswith(", ".join(n for c, n in enumerate(RAVDESS) if train.y_multi[0, c]))


def test_reasoning_target_needs_reasoning_texts_and_then_trains(tiny_dir, tmp_path):
    model = make(tiny_dir, target="reasoning", max_new_tokens=3)
    train = random_examples(8, RAVDESS, SHAPES, seed=0)
    with pytest.raises(EmotuneError, match="reasoning"):
        model.fit(train, train.subset([]), tmp_path)
    train.reasoning = [f"The voice sounds {RAVDESS[y]}." for y in train.y]
    model.fit(train, train.subset([]), tmp_path / "r")
    np.testing.assert_allclose(model.predict_proba(train).sum(1), 1.0, **tol(np.float32, 2 * 8))  # as above


def test_save_load_roundtrip(tiny_dir, tmp_path):
    model = make(tiny_dir, prompts=["terse", "default"])
    ex = random_examples(6, RAVDESS, SHAPES, seed=2)
    for name, p in model.net.projectors.items():
        p.set_stats(ex.features[name])
    model.save(tmp_path)
    again = EmotionLM.load(tmp_path)
    assert again.state_hash() == model.state_hash()
    # Same weights, rebuilt model: the same fp32 forward; probabilities are at most 1.
    batch = again.batcher.collate([again.batcher.row(ex, i, again.eval_templates[0]) for i in range(len(ex))])
    n = network_chain(again.net, len(batch.prefix) + batch.ids.shape[1])
    np.testing.assert_allclose(again.predict_proba(ex), model.predict_proba(ex), **tol(np.float32, n))


def test_text_only_examples_and_user_errors(tiny_dir, tmp_path):
    model = make(tiny_dir, shapes={})
    ex = random_examples(8, RAVDESS, {}, seed=0)
    model.fit(ex, ex, tmp_path)  # LoRA alone: the transcript is the signal
    assert model.predict_proba(ex).shape == (8, 8)
    with pytest.raises(EmotuneError, match="nothing to train"):
        make(tiny_dir, shapes={}, lora=False).fit(ex, ex, tmp_path / "none")
    with pytest.raises(EmotuneError, match="unknown prompt template"):
        make(tiny_dir, prompts=["no_such_template"])
    with pytest.raises(EmotuneError, match="target_modules"):
        EmotionLM(RAVDESS, [], {}, LMConfig(backbone=str(tiny_dir), dtype="fp32", lora=LoRAConfig(target_modules=["nope"])),
            TrainConfig(), seed=0)
    bad = random_examples(2, RAVDESS, {"egemaps": (40,)}, seed=0)
    with pytest.raises(EmotuneError, match="shape"):
        make(tiny_dir, shapes={"egemaps": (88,)}).predict_proba(bad)


def test_prompt_pool_files_are_validated(tmp_path):
    from emotune.model.prompt import load_templates

    assert len(load_templates(["emotion"])) >= 7
    pool = tmp_path / "mine.yaml"
    pool.write_text("templates:\n  a:\n    user: 'Emotion of {transcript}?'\n")
    with pytest.raises(EmotuneError, match="inputs"):
        load_templates([str(pool)])
    pool.write_text("templates:\n  a:\n    user: '{inputs}{mood}'\n")
    with pytest.raises(EmotuneError, match="unknown slot"):
        load_templates([str(pool)])


@pytest.mark.slow
def test_smollm2_closed_set_agrees_with_greedy_generation(emotune_cache):
    """fp32 SmolLM2: where the greedy answer's first token is a label spelling, the parsed answer is the
    closed-set argmax; and the closed-set scores equal the full-vocabulary first-token logits restricted
    to the label spellings."""
    from emotune.evaluate.decode import parse_label

    model = make("smollm2-135m-instruct", shapes={"egemaps": (88,)}, lora=False)
    ex = random_examples(8, RAVDESS, {"egemaps": (88,)}, seed=0)
    probs = model.predict_proba(ex)
    np.testing.assert_allclose(probs.sum(1), 1.0, **tol(np.float32, 2 * 8))  # fp32 softmax over 8, then 8 summed
    texts = model.generate(ex, max_new_tokens=3)
    labels = load_label_set("ravdess")
    t = model.eval_templates[0]
    both = 0
    with torch.no_grad():
        for i in range(len(ex)):
            batch = model.batcher.collate([model.batcher.row(ex, i, t)], share_prefix=False)
            logits = model.net.base(inputs_embeds=model.net.embed(batch)).logits[0, -1].float()
            restricted = torch.logsumexp(logits[model.net.first_ids][None] + model.net.owner, -1)
            # Full-vocabulary logits of one row vs the batched closed-set head: the fp32 SmolLM2 forward
            # summed in other orders; probabilities are at most 1.
            n = network_chain(model.net, batch.ids.shape[1], model.net.base.config.vocab_size)
            np.testing.assert_allclose(torch.softmax(restricted, -1).numpy(), probs[i], **tol(np.float32, n))
            if int(logits.argmax()) in model.net.first_ids.tolist():
                both += 1
                assert parse_label(texts[i], labels) == RAVDESS[int(probs[i].argmax())], texts[i]
    assert both > 0  # zero-shot, SmolLM2 answers most of these with a label word


def test_a_lora_lm_run_prints_no_library_deprecation_warning(tiny_dir, tmp_path):
    """peft and accelerate ask transformers 5 the deprecated is_gradient_checkpointing: the user must not see it
    (a fresh process, so no filter set by another test hides a regression)."""
    import subprocess
    import sys

    code = f"""
import warnings
warnings.simplefilter("default")
from tests.model.test_emotion_lm import make
from tests.model.tiny import random_examples
m = make({str(tiny_dir)!r})
ex = random_examples(8, m.label_names, {SHAPES!r}, seed=0)
m.fit(ex, ex, {str(tmp_path / 'run')!r})
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(Path(__file__).parents[2]),
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "is_gradient_checkpointing" not in out.stderr
