"""Text classification and feature/attention distillation (notebook 05), on a smoke preset.

Tiny Transformers (width 16) and a few dozen tickets: every code path of kdkit.data's ticket
corpus and tokenizer, kdkit.models' Transformer, kdkit.features and kdkit.train's text loops,
in a few seconds.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from figure_readers import seed_rows
from torch.optim.optimizer import register_optimizer_step_pre_hook

import kdkit
from kdkit.data.tickets import (
    TICKET_CLASSES,
    EncodedText,
    WordTokenizer,
    encode_corpus,
    make_ticket_corpus,
)
from kdkit.features import (
    HiddenStateLoss,
    attention_map_loss,
    check_layer_mapping,
    hidden_state_mse,
    layer_mapping,
    mapped_attention_loss,
)
from kdkit.models import TransformerClassifier, TransformerConfig, init_student_from_teacher
from kdkit.stats import t_interval
from kdkit.train import distill_text_classifier, evaluate_text, train_text_classifier


@pytest.fixture(autouse=True, scope="module")
def one_intra_op_thread():
    """Tiny tensors: a second intra-op thread only adds contention on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus():
    return make_ticket_corpus(96, seed=0)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return WordTokenizer.from_texts(corpus.texts)


@pytest.fixture(scope="module")
def data(corpus, tokenizer) -> EncodedText:
    return encode_corpus(corpus, tokenizer)


def smoke_config(tokenizer, num_layers: int, **overrides) -> TransformerConfig:
    kwargs = dict(
        vocab_size=len(tokenizer),
        num_classes=len(TICKET_CLASSES),
        d_model=16,
        num_heads=2,
        num_layers=num_layers,
        d_ff=32,
    )
    return TransformerConfig(**{**kwargs, **overrides})


def pair(tokenizer, seed: int = 0):
    """A 4-layer teacher and a 2-layer student of the same width, both random."""
    kdkit.set_seed(seed)
    teacher = TransformerClassifier(smoke_config(tokenizer, 4))
    student = TransformerClassifier(smoke_config(tokenizer, 2))
    return teacher, student


# --------------------------------------------------------------------------- corpus


def test_corpus_is_deterministic_balanced_and_short():
    a, b = make_ticket_corpus(120, seed=3), make_ticket_corpus(120, seed=3)
    assert a.texts == b.texts and a.labels == b.labels
    assert make_ticket_corpus(120, seed=4).texts != a.texts
    assert a.class_names == TICKET_CLASSES and len(TICKET_CLASSES) == 6
    assert [a.labels.count(c) for c in range(6)] == [20] * 6
    assert max(len(t.split()) for t in a.texts) <= 20
    assert len(a.other_labels) == len(a) and any(o >= 0 for o in a.other_labels)
    assert all(o != y for y, o in zip(a.labels, a.other_labels, strict=True))
    one_issue = make_ticket_corpus(60, seed=3, two_issue_prob=0.0)
    assert set(one_issue.other_labels) == {-1}


def test_corpus_classes_overlap_and_some_tickets_are_ambiguous():
    corpus = make_ticket_corpus(2000, seed=1)
    words = defaultdict(set)  # class -> words of its one-issue tickets
    one_issue = make_ticket_corpus(600, seed=1, two_issue_prob=0.0)
    for text, label in zip(one_issue.texts, one_issue.labels, strict=True):
        words[TICKET_CLASSES[label]].update(text.split())
    assert {"card"} <= words["billing"] & words["refund"] & words["account"]
    assert {"address", "order"} <= words["shipping"] & words["order change"]
    assert {"login"} <= words["account"] & words["app bug"]
    labels_of = defaultdict(set)
    for text, label in zip(corpus.texts, corpus.labels, strict=True):
        labels_of[text].add(label)
    assert any(len(labels) > 1 for labels in labels_of.values()), "no identical text, two labels"


def test_corpus_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_examples"):
        make_ticket_corpus(0)
    with pytest.raises(ValueError, match="two_issue_prob"):
        make_ticket_corpus(10, two_issue_prob=1.5)


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_round_trip_specials_and_unknown_words(corpus, tokenizer):
    assert tokenizer.vocab[:3] == ["[PAD]", "[UNK]", "[CLS]"]
    for text in corpus.texts:
        ids = tokenizer.encode(text)
        assert ids[0] == tokenizer.cls_id and tokenizer.unk_id not in ids
        assert tokenizer.decode(ids) == " ".join(WordTokenizer.split(text))
    assert WordTokenizer.split("Hi, my ORDER #12!") == ["hi", "my", "order", "12"]
    assert tokenizer.tokens("my zyzzyva order") == ["[CLS]", "my", "[UNK]", "order"]
    assert WordTokenizer.from_texts(corpus.texts).vocab == tokenizer.vocab  # deterministic ids
    rare = WordTokenizer.from_texts(["a a b"], min_freq=2)
    assert rare.vocab == ["[PAD]", "[UNK]", "[CLS]", "a"]


def test_tokenizer_pads_right_truncates_and_masks():
    texts = ["my order", "the app crashes when i open my cart"]
    tokenizer = WordTokenizer.from_texts(texts)
    ids, mask = tokenizer(texts, max_len=6)
    assert ids.shape == mask.shape == (2, 6) and mask.dtype == torch.bool
    assert torch.equal(mask, ids != tokenizer.pad_id)
    assert mask[0].tolist() == [True, True, True, False, False, False]
    assert tokenizer.decode(ids[1]) == "the app crashes when i"  # [CLS] + 5 words
    ids, _ = tokenizer(["my order"], max_len=24)
    assert ids.shape == (1, 3)  # padded to the longest text, not to max_len


def test_tokenizer_and_encoded_text_reject_bad_input(data):
    with pytest.raises(ValueError, match="must start with"):
        WordTokenizer(["a", "b", "c"])
    with pytest.raises(ValueError, match="duplicate"):
        WordTokenizer(["[PAD]", "[UNK]", "[CLS]", "a", "a"])
    with pytest.raises(ValueError, match="attention_mask"):
        EncodedText(data.input_ids, data.attention_mask.long(), data.labels)
    with pytest.raises(ValueError, match="labels"):
        EncodedText(data.input_ids, data.attention_mask, data.labels[:-1])
    assert len(data.subset(slice(0, 5))) == 5


# --------------------------------------------------------------------------- model


def test_transformer_shapes(tokenizer, data):
    teacher, _ = pair(tokenizer)
    teacher.eval()  # no dropout: two forward passes agree
    ids, mask = data.input_ids[:5], data.attention_mask[:5]
    out = teacher.encode(ids, mask)
    B, L = ids.shape
    assert out.logits.shape == (B, 6)
    assert out.embeddings.shape == (B, L, 16)
    assert len(out.hidden_states) == len(out.attentions) == 4
    assert all(h.shape == (B, L, 16) for h in out.hidden_states)
    assert all(a.shape == (B, 2, L, L) for a in out.attentions)
    assert torch.equal(teacher(ids, mask), out.logits)


def test_attention_rows_sum_to_one_and_ignore_padded_keys(tokenizer, data):
    teacher, _ = pair(tokenizer)
    mask = data.attention_mask[:8]
    assert not mask.all(), "the smoke batch should contain padding"
    for probs in teacher.encode(data.input_ids[:8], mask).attentions:
        assert torch.allclose(probs.sum(-1), torch.ones(probs.shape[:-1]), atol=1e-6)
        assert (probs.masked_select(~mask[:, None, None, :]) == 0).all()


def test_padding_does_not_change_a_sentence_logits(tokenizer):
    teacher, _ = pair(tokenizer)
    teacher.eval()
    alone, _ = tokenizer(["my order"])
    batch, mask = tokenizer(["my order", "the app crashes when i open my cart"])
    assert batch.shape[1] > alone.shape[1]
    torch.testing.assert_close(teacher(alone), teacher(batch, mask)[:1], rtol=0, atol=1e-6)


def test_transformer_rejects_bad_input(tokenizer):
    teacher, _ = pair(tokenizer)
    with pytest.raises(ValueError, match="max_len"):
        teacher(torch.ones(1, 30, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        teacher(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5))
    with pytest.raises(ValueError, match="divisible"):
        smoke_config(tokenizer, 2, num_heads=3)


def test_student_from_teacher_copies_exactly_the_mapped_layers(tokenizer):
    teacher, student = pair(tokenizer)
    assert init_student_from_teacher(student, teacher) == [0, 2]  # every other block
    for name in ("token_embedding", "position_embedding", "ln_final", "head"):
        for a, b in zip(
            getattr(student, name).parameters(), getattr(teacher, name).parameters(), strict=True
        ):
            assert torch.equal(a, b)
    for i, j in [(0, 0), (1, 2)]:
        s_state, t_state = student.blocks[i].state_dict(), teacher.blocks[j].state_dict()
        assert all(torch.equal(s_state[k], t_state[k]) for k in t_state)
    other = teacher.blocks[1].state_dict()
    assert not torch.equal(
        student.blocks[1].state_dict()["attn.qkv.weight"], other["attn.qkv.weight"]
    )
    student.blocks[0].ff[0].weight.data.add_(1.0)  # a copy, not shared storage
    assert not torch.equal(student.blocks[0].ff[0].weight, teacher.blocks[0].ff[0].weight)
    assert init_student_from_teacher(student, teacher, [1, 3]) == [1, 3]


def test_student_from_teacher_rejects_bad_input(tokenizer):
    teacher, student = pair(tokenizer)
    with pytest.raises(ValueError, match="out of range"):
        init_student_from_teacher(student, teacher, [0, 4])
    with pytest.raises(ValueError, match="one teacher block per student block"):
        init_student_from_teacher(student, teacher, [0])
    narrow = TransformerClassifier(smoke_config(tokenizer, 2, d_model=8))
    with pytest.raises(ValueError, match="d_model"):
        init_student_from_teacher(narrow, teacher)


# --------------------------------------------------------------------------- feature losses


def test_layer_mapping():
    assert layer_mapping(2, 4) == [(0, 1), (1, 3)]  # student i <-> teacher 2i + 1
    assert layer_mapping(3, 6) == [(0, 1), (1, 3), (2, 5)]
    assert layer_mapping(4, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert layer_mapping(1, 4) == [(0, 3)]
    with pytest.raises(ValueError, match="multiple"):
        layer_mapping(3, 4)
    with pytest.raises(ValueError, match="positive"):
        layer_mapping(0, 4)
    assert check_layer_mapping([[0, 1]], 2, 4) == [(0, 1)]
    with pytest.raises(ValueError, match=r"teacher layer 4 is out of range.*0 to 3"):
        check_layer_mapping([(1, 4)], 2, 4)
    with pytest.raises(ValueError, match=r"student layer 2 is out of range.*0 to 1"):
        check_layer_mapping([(2, 3)], 2, 4)
    with pytest.raises(ValueError, match="empty"):
        check_layer_mapping([], 2, 4)


def random_states(B=3, L=5, D=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2, 1:] = False
    return torch.randn(B, L, D, generator=g), torch.randn(B, L, D, generator=g), mask


def test_hidden_state_mse_zero_positive_and_masked():
    h_s, h_t, mask = random_states()
    assert hidden_state_mse(h_t, h_t, mask) == 0
    loss = hidden_state_mse(h_s, h_t, mask)
    assert loss > 0
    naive = ((h_s - h_t) ** 2).mean(-1)[mask].mean()
    torch.testing.assert_close(loss, naive)
    changed = h_s.clone()
    changed[~mask] = 100.0  # padded positions: any value, same loss
    torch.testing.assert_close(hidden_state_mse(changed, h_t, mask), loss, rtol=0, atol=0)
    assert hidden_state_mse(h_s, h_t, mask, reduction="none").shape == mask.shape


def test_hidden_state_loss_projects_and_checks_widths():
    h_s, h_t, mask = random_states(D=4)
    plain = HiddenStateLoss([(0, 1)], student_dim=4, teacher_dim=4)  # identity at the start
    torch.testing.assert_close(plain([h_s], [h_t, h_t], mask), hidden_state_mse(h_s, h_t, mask))
    assert plain([h_t], [h_s, h_t], mask) == 0
    wide_t = torch.randn(3, 5, 8)
    projected = HiddenStateLoss([(0, 0)], student_dim=4, teacher_dim=8)
    assert projected([h_s], [wide_t], mask) > 0
    assert projected.projections[0].weight.shape == (8, 4)
    with pytest.raises(ValueError, match=r"hidden widths differ.*HiddenStateLoss"):
        hidden_state_mse(h_s, wide_t, mask)
    with pytest.raises(ValueError, match="project=False needs equal widths"):
        HiddenStateLoss([(0, 0)], student_dim=4, teacher_dim=8, project=False)
    with pytest.raises(ValueError, match="out of range"):
        plain([h_s], [h_t], mask)  # teacher layer 1 of a 1-layer teacher


def test_the_projection_starts_as_the_identity_without_drawing_random_numbers():
    state = torch.get_rng_state()
    fitnets = HiddenStateLoss([(0, 1), (1, 3)], student_dim=4, teacher_dim=6)
    assert torch.equal(torch.get_rng_state(), state)  # seeded runs stay aligned with or without it
    for projection in fitnets.projections:
        assert torch.equal(projection.weight, torch.eye(6, 4))
        assert torch.equal(projection.bias, torch.zeros(6))
        assert projection.weight.requires_grad and projection.bias.requires_grad


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_attention_map_loss_zero_positive_and_masked(kind):
    g = torch.Generator().manual_seed(1)
    _, _, mask = random_states()
    B, L, H = 3, 5, 2
    keys = mask[:, None, None, :]

    def attention():
        scores = torch.randn(B, H, L, L, generator=g).masked_fill(~keys, -1e9)
        return scores.softmax(-1)

    a_s, a_t = attention(), attention()
    assert attention_map_loss(a_t, a_t, mask, kind=kind) == 0
    loss = attention_map_loss(a_s, a_t, mask, kind=kind)
    assert loss > 0
    changed = a_s.clone()
    changed[~mask[:, None, :].expand(B, H, L)] = 0.5  # rows of padded queries: ignored
    torch.testing.assert_close(attention_map_loss(changed, a_t, mask, kind=kind), loss)
    per_query = attention_map_loss(a_s, a_t, mask, kind=kind, reduction="none")
    assert per_query.shape == (B, H, L)
    if kind == "kl":
        naive = (a_t * (a_t.clamp_min(1e-12).log() - a_s.clamp_min(1e-12).log())).sum(-1)
        torch.testing.assert_close(loss, naive[mask[:, None, :].expand(B, H, L)].mean())
    both = mapped_attention_loss([a_s], [a_s, a_t], [(0, 1)], mask, kind)
    torch.testing.assert_close(both, loss)


def test_attention_map_loss_rejects_bad_input():
    a = torch.full((1, 2, 3, 3), 1 / 3)
    with pytest.raises(ValueError, match="num_heads"):
        attention_map_loss(a, torch.full((1, 4, 3, 3), 1 / 3))
    with pytest.raises(ValueError, match="kind"):
        attention_map_loss(a, a, kind="cosine")
    with pytest.raises(ValueError, match="mask"):
        attention_map_loss(a, a, torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="out of range"):
        mapped_attention_loss([a, a], [a, a], [(0, 1), (1, 2)])


# --------------------------------------------------------------------------- training loops


VARIANTS = {
    "ce": dict(alpha=0.0),
    "kd": dict(alpha=0.5, T=2.0),
    "kd+hidden": dict(alpha=0.5, hidden_weight=1.0),
    "kd+attention": dict(alpha=0.5, attention_weight=1.0, attention_kind="mse"),
    "all": dict(alpha=0.9, hidden_weight=0.5, attention_weight=0.5),
}


def distil_once(tokenizer, data, variant: str, from_teacher: bool = False):
    teacher, student = pair(tokenizer)
    if from_teacher:
        init_student_from_teacher(student, teacher)
    hidden = HiddenStateLoss(layer_mapping(2, 4), 16, 16)
    kdkit.set_seed(7)
    history = distill_text_classifier(
        student,
        teacher,
        data,
        **VARIANTS[variant],
        hidden_loss=hidden,
        num_epochs=1,
        batch_size=32,
        val=data.subset(slice(0, 20)),
        progress=False,
    )
    return student, hidden, history


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_distillation_runs_each_variant_and_is_bitwise_deterministic(tokenizer, data, variant):
    student, hidden, history = distil_once(tokenizer, data, variant)
    again, hidden_again, history_again = distil_once(tokenizer, data, variant)
    assert history == history_again
    for a, b in zip(student.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(hidden.parameters(), hidden_again.parameters(), strict=True):
        assert torch.equal(a, b)
    assert set(history) == {"loss", "ce", "kd", "hidden", "attention", "grad_norm",
                            "val_accuracy", "val_loss"}
    assert all(len(v) == 1 for v in history.values())
    weights = VARIANTS[variant]
    assert (history["hidden"][0] > 0) == (weights.get("hidden_weight", 0) > 0)
    assert (history["attention"][0] > 0) == (weights.get("attention_weight", 0) > 0)
    if variant == "ce":
        assert history["loss"] == history["ce"]
        assert torch.equal(hidden.projections[0].weight, torch.eye(16))  # not trained
    elif "hidden_weight" in weights:
        assert not torch.equal(hidden.projections[0].weight, torch.eye(16))  # trained with it


def test_distillation_from_teacher_init_and_training_helpers(tokenizer, data):
    student, _, history = distil_once(tokenizer, data, "kd", from_teacher=True)
    val = data.subset(slice(0, 20))
    # the recorded validation accuracy is the student's, computed here on the whole batch
    assert history["val_accuracy"][0] == pytest.approx(_accuracy_and_loss(student, val)[0])
    kdkit.set_seed(0)
    model = TransformerClassifier(smoke_config(tokenizer, 2))
    held_out = encode_corpus(make_ticket_corpus(96, seed=1), tokenizer)
    untrained = evaluate_text(model, held_out)
    history = train_text_classifier(
        model, data, num_epochs=20, lr=1e-2, batch_size=32, progress=False
    )
    assert len(history["loss"]) == len(history["grad_norm"]) == 20
    assert history["val_accuracy"] == history["val_loss"] == []
    assert history["loss"][-1] < 0.6 * history["loss"][0]  # training lowers the loss
    result = evaluate_text(model, data)
    accuracy, loss = _accuracy_and_loss(model, data)
    assert result["accuracy"] == pytest.approx(accuracy) and result["loss"] == pytest.approx(loss)
    assert result["accuracy"] > 0.6  # chance is 1/6
    trained = evaluate_text(model, held_out)  # and it generalises: unseen tickets
    assert trained["accuracy"] > max(untrained["accuracy"], 1 / len(TICKET_CLASSES)) + 0.15
    assert trained["loss"] < untrained["loss"] - 0.3


def _accuracy_and_loss(model, data: EncodedText) -> tuple[float, float]:
    """Accuracy and mean cross-entropy from one forward pass over all of ``data`` (an
    independent check of kdkit.train's batched evaluation)."""
    model.eval()
    with torch.no_grad():
        logits = model(data.input_ids, data.attention_mask).double()
    accuracy = (logits.argmax(-1) == data.labels).double().mean().item()
    nll = -logits.log_softmax(-1).gather(-1, data.labels[:, None]).mean().item()
    return accuracy, nll


def _trained(tokenizer, data, loop: str, **kwargs):
    """A student trained for two epochs from seed 0 by ``loop``: (weights, history)."""
    teacher, student = pair(tokenizer)
    kdkit.set_seed(7)
    if loop == "train":
        history = train_text_classifier(student, data, num_epochs=2, batch_size=32,
                                        progress=False, **kwargs)
    else:
        history = distill_text_classifier(student, teacher, data, alpha=0.5, num_epochs=2,
                                          batch_size=32, progress=False, **kwargs)
    return student.state_dict(), history


@pytest.mark.parametrize("loop", ["train", "distill"])
def test_validation_and_gradient_bookkeeping_leave_training_unchanged(tokenizer, data, loop):
    """Evaluating after each epoch and reading the gradient norm draw no random numbers and
    touch no weight: the run with ``val`` is bitwise the run without, and so is a clipping
    threshold no gradient reaches."""
    plain, history = _trained(tokenizer, data, loop)
    watched, watched_history = _trained(tokenizer, data, loop, val=data.subset(slice(0, 20)))
    loose, _ = _trained(tokenizer, data, loop, max_grad_norm=1e9)
    for weights in (watched, loose):
        assert all(torch.equal(plain[k], weights[k]) for k in plain)
    assert len(watched_history["val_loss"]) == len(watched_history["val_accuracy"]) == 2
    assert history["val_loss"] == []
    for key, values in history.items():
        if not key.startswith("val"):
            assert watched_history[key] == values, key
    assert all(norm > 0 for norm in history["grad_norm"])


@pytest.mark.parametrize("loop", ["train", "distill"])
def test_gradient_clipping_bounds_what_the_optimiser_sees(tokenizer, data, loop):
    seen = []  # the total gradient norm at each optimiser step, after clipping

    def before_step(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        seen.append(float(torch.nn.utils.get_total_norm(grads)))

    handle = register_optimizer_step_pre_hook(before_step)
    try:
        _, free = _trained(tokenizer, data, loop)
        unclipped, seen[:] = list(seen), []
        clipped_weights, clipped = _trained(tokenizer, data, loop, max_grad_norm=0.05)
    finally:
        handle.remove()
    assert max(unclipped) > 0.05 and max(seen) <= 0.05 * (1 + 1e-5)
    steps = -(-len(data) // 32)  # per epoch
    assert len(unclipped) == len(seen) == 2 * steps
    # the history keeps each epoch's largest norm, measured before clipping: the first step
    # (same weights, same batch) has the same norm with and without clipping
    assert free["grad_norm"] == pytest.approx([max(unclipped[:steps]), max(unclipped[steps:])])
    assert clipped["grad_norm"][0] >= unclipped[0] > 0.05
    plain, _ = _trained(tokenizer, data, loop)
    assert any(not torch.equal(plain[k], clipped_weights[k]) for k in plain)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1"])
def test_max_grad_norm_must_be_positive_and_finite(tokenizer, data, bad):
    teacher, student = pair(tokenizer)
    with pytest.raises(ValueError, match="max_grad_norm must be a positive"):
        train_text_classifier(student, data, num_epochs=1, max_grad_norm=bad, progress=False)
    with pytest.raises(ValueError, match="max_grad_norm must be a positive"):
        distill_text_classifier(student, teacher, data, num_epochs=1, max_grad_norm=bad,
                                progress=False)


def test_distillation_rejects_bad_configuration(tokenizer, data):
    teacher, student = pair(tokenizer)
    with pytest.raises(ValueError, match="hidden_loss=HiddenStateLoss"):
        distill_text_classifier(student, teacher, data, hidden_weight=1.0, num_epochs=1)
    with pytest.raises(ValueError, match="alpha"):
        distill_text_classifier(student, teacher, data, alpha=1.5, num_epochs=1)
    with pytest.raises(ValueError, match="out of range"):
        distill_text_classifier(
            student, teacher, data, attention_weight=1.0, attention_mapping=[(0, 4)], num_epochs=1
        )
    with pytest.raises(ValueError, match=">= 0"):
        distill_text_classifier(student, teacher, data, attention_weight=-1.0, num_epochs=1)


# --------------------------------------------------------------------------- stats and plots


def test_t_interval():
    mean, half = t_interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert half == pytest.approx(4.302652729911275 * 0.1 / 3**0.5)
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([1.0])


def test_attention_maps_plot_shows_every_head_of_every_layer(tokenizer):
    import matplotlib.pyplot as plt
    import numpy as np

    from kdkit.plotting import plot_attention_maps

    teacher, student = pair(tokenizer)
    text = "my order"
    ids, _ = tokenizer([text])
    tokens = tokenizer.tokens(text)
    with torch.no_grad():
        maps = {
            "teacher": teacher.encode(ids).attentions,  # per layer (1, H, L, L)
            "student": student.encode(ids).attentions,
        }
    fig = plot_attention_maps(maps, tokens)
    assert len(fig.axes) == 2 * (4 + 2) + 1  # heads x layers per model, one colour bar
    vmax = max(float(a.max()) for layers in maps.values() for a in layers)
    for subfig, (name, layers) in zip(fig.subfigs[:-1], maps.items(), strict=True):
        assert subfig.get_suptitle() == name
        H = layers[0].shape[1]
        axes = np.array(subfig.axes).reshape(H, len(layers))  # rows: heads, columns: layers
        for layer, a in enumerate(layers):
            assert axes[0, layer].get_title() == f"layer {layer}"
            for head in range(H):
                image = axes[head, layer].images[0]
                np.testing.assert_allclose(image.get_array(), a[0, head].numpy(), rtol=1e-6)
                assert image.norm.vmax == pytest.approx(vmax)  # one colour scale for all
        assert [t.get_text() for t in axes[-1, 0].get_xticklabels()] == tokens
        assert [t.get_text() for t in axes[0, 0].get_yticklabels()] == tokens
    with pytest.raises(ValueError, match="tokens"):
        plot_attention_maps(maps, ["[CLS]"])
    plt.close("all")


def test_token_weights_plot_draws_each_row_and_marks_its_largest_weight():
    import matplotlib.pyplot as plt
    import numpy as np

    from kdkit.plotting import plot_token_weights

    tokens = ["[CLS]", "my", "card", "was", "charged"]
    g = torch.Generator().manual_seed(0)
    teacher = torch.softmax(torch.randn(3, 5, generator=g), -1)  # (rows, L)
    groups = {"teacher": {f"head {h}": teacher[h] for h in range(3)},
              "student": {"head 0": [0.1, 0.1, 0.6, 0.1, 0.1]}}
    fig = plot_token_weights(groups, tokens, title="t")
    ax_t, ax_s = fig.axes[:2]
    np.testing.assert_allclose(ax_t.images[0].get_array(), teacher.numpy(), rtol=1e-6)
    assert [t.get_text() for t in ax_t.get_yticklabels()] == ["head 0", "head 1", "head 2"]
    assert [t.get_text() for t in ax_s.get_xticklabels()] == tokens
    vmax = max(float(teacher.max()), 0.6)
    assert ax_s.images[0].norm.vmax == pytest.approx(vmax)  # one colour scale for all groups
    for ax, rows in ((ax_t, teacher.numpy()), (ax_s, np.array([[0.1, 0.1, 0.6, 0.1, 0.1]]))):
        marked = sorted((round(t.get_position()[1]), round(t.get_position()[0]), t.get_text())
                        for t in ax.texts)
        assert marked == [(r, int(row.argmax()), f"{row.max():.2f}") for r, row in enumerate(rows)]
        assert ax.get_title(loc="left") in groups
    with pytest.raises(ValueError, match="tokens"):
        plot_token_weights(groups, tokens[:3])
    with pytest.raises(ValueError, match="empty"):
        plot_token_weights({"teacher": {}}, tokens)
    plt.close("all")


def test_epoch_curves_plot_draws_means_and_seeds():
    import matplotlib.pyplot as plt
    import numpy as np

    from kdkit.plotting import plot_epoch_curves

    def history(shift):
        return {"ce": [1.0 - shift, 0.5, 0.2], "val_loss": [1.1, 0.8 + shift, 0.9],
                "val_accuracy": [0.5, 0.7 + shift, 0.8]}

    runs = {"CE only": [history(0.0), history(0.1)], "response KD": [history(0.05)] * 2}
    fig = plot_epoch_curves(runs, title="curves")
    ax_loss, ax_acc = fig.axes
    bold = {line.get_label(): line for line in ax_acc.lines if line.get_linewidth() == 2}
    np.testing.assert_allclose(bold["CE only"].get_ydata(), [0.5, 0.75, 0.8])
    np.testing.assert_allclose(bold["CE only"].get_xdata(), [1, 2, 3])
    thin = [line for line in ax_acc.lines if line.get_linewidth() < 1]
    assert len(thin) == 4 and bold["response KD"].get_color() == "C1"
    solid = {line.get_label(): line for line in ax_loss.lines
             if line.get_linestyle() == "-" and len(line.get_xdata())}
    np.testing.assert_allclose(solid["CE only"].get_ydata(), [1.1, 0.85, 0.9])
    dashed = [line for line in ax_loss.lines if line.get_linestyle() == "--"
              and len(line.get_xdata())]
    np.testing.assert_allclose(dashed[0].get_ydata(), [0.95, 0.5, 0.2])
    assert ax_loss.get_yscale() == "log"
    assert all(float(tick).is_integer() for tick in ax_acc.get_xticks())  # whole epochs
    with pytest.raises(ValueError, match="val="):
        plot_epoch_curves({"CE only": [{"ce": [1.0], "val_accuracy": [0.5]}]})
    with pytest.raises(ValueError, match="empty"):
        plot_epoch_curves({})
    plt.close("all")


def test_variant_comparison_plot_draws_seeds_means_and_paired_intervals():
    import matplotlib.pyplot as plt
    import numpy as np

    from kdkit.plotting import plot_variant_comparison

    runs = {"ce": [0.8, 0.82, 0.81], "kd": [0.85, 0.86, 0.84], "kd+att": [0.83, 0.89, 0.84]}
    fig = plot_variant_comparison(runs, "ce", reference={"teacher": 0.9}, confidence=0.9)
    ax_a, ax_d = fig.axes
    left, right = seed_rows(ax_a), seed_rows(ax_d)
    assert list(left) == ["ce", "kd", "kd+att"] and list(right) == ["kd", "kd+att"]
    for k, (name, values) in enumerate(runs.items()):
        mean, half = t_interval(values, 0.9)
        np.testing.assert_allclose(left[name]["dots"], values)
        assert left[name]["mean"] == pytest.approx(np.mean(values))
        np.testing.assert_allclose(left[name]["interval"], (mean - half, mean + half))
        assert left[name]["label"] == f"{mean:.3f} ± {half:.3f}"
        assert left[name]["color"] == f"C{k}"
        if name == "ce":
            continue
        diff = np.subtract(values, runs["ce"])  # same seed, minus the baseline
        mean, half = t_interval(diff, 0.9)
        np.testing.assert_allclose(right[name]["dots"], diff)
        assert right[name]["mean"] == pytest.approx(diff.mean())
        np.testing.assert_allclose(right[name]["interval"], (mean - half, mean + half))
        assert right[name]["label"] == f"{mean:+.3f} ± {half:.3f}"
        assert right[name]["color"] == f"C{k}"  # the same colour as on the left
    assert "90% t interval" in ax_a.get_title()
    (teacher,) = [line for line in ax_a.lines if line.get_linestyle() == "--"]
    assert teacher.get_xdata()[0] == 0.9
    with pytest.raises(ValueError, match="baseline"):
        plot_variant_comparison({"kd": [0.1, 0.2]}, "ce")
    plt.close("all")


def test_unlabelled_tickets_are_a_transfer_set(tokenizer, data):
    """NO_LABEL rows train on the teacher's terms only: batches without a single label (most
    of them here) give a finite loss, not NaN, and the KD on those rows moves the student."""
    partial = EncodedText(data.input_ids, data.attention_mask,
                          torch.where(torch.arange(len(data)) < 8, data.labels, -100))
    runs = {}
    for alpha in (0.0, 0.5):
        teacher, student = pair(tokenizer)
        kdkit.set_seed(7)
        history = distill_text_classifier(student, teacher, partial, alpha=alpha, num_epochs=2,
                                          batch_size=8, progress=False)
        assert all(v[-1] == v[-1] for v in history.values() if v)  # no NaN
        runs[alpha] = student.state_dict()
    assert any(not torch.equal(runs[0.0][k], runs[0.5][k]) for k in runs[0.0])


def test_label_first_marks_the_tickets_that_state_their_label_first():
    corpus = make_ticket_corpus(3000, seed=5)
    two = [first for first, other in zip(corpus.label_first, corpus.other_labels, strict=True)
           if other >= 0]
    assert all(first for first, other in zip(corpus.label_first, corpus.other_labels, strict=True)
               if other < 0)
    assert abs(sum(two) / len(two) - 0.75) < 0.05  # main_first_prob, within sampling noise
    always = make_ticket_corpus(300, seed=5, main_first_prob=1.0)
    assert all(always.label_first)
    assert make_ticket_corpus(300, seed=5).texts == make_ticket_corpus(300, seed=5).texts


def test_bayes_accuracy_is_what_the_best_rule_scores_on_generated_tickets():
    from kdkit.data.tickets import bayes_accuracy

    assert bayes_accuracy(0.0) == bayes_accuracy(0.3, 1.0) == 1.0
    assert 1 - 0.3 * 0.25 <= bayes_accuracy() < 1  # the first-issue rule is a floor
    corpus = make_ticket_corpus(12000, seed=9, two_issue_prob=1.0)
    pairs = [(y if first else o, o if first else y)  # (intent read first, intent read second)
             for y, o, first in zip(corpus.labels, corpus.other_labels, corpus.label_first,
                                    strict=True)]
    votes = defaultdict(lambda: defaultdict(int))  # how often each reading had each label
    for pair, y in zip(pairs, corpus.labels, strict=True):
        votes[pair][y] += 1
    best = sum(max(v.values()) for v in votes.values()) / len(corpus)  # the best rule, in-sample
    assert abs(best - bayes_accuracy(1.0)) < 0.015  # 12,000 tickets: sd about 0.004
    with pytest.raises(ValueError, match="main_first_prob"):
        bayes_accuracy(0.3, 1.5)
