"""Notebook 05's exercises (text and feature distillation): checks and worked solutions."""

from __future__ import annotations

import torch

from kdkit import features
from kdkit.data import tickets
from kdkit.exercises.core import call, exercise


def _attention_case(gen: torch.Generator, B: int = 3, H: int = 2, L: int = 6):
    """Random attention rows over the real keys, padded on the right: (stu, tea, mask)."""
    lengths = torch.tensor([L, 4, 2])[:B]
    mask = torch.arange(L)[None, :] < lengths[:, None]  # (B, L)
    keys = mask[:, None, None, :]  # (B, 1, 1, L)

    def rows():  # padded *queries* get rows too, as a model's do: the loss must skip them
        scores = torch.randn(B, H, L, L, generator=gen) * 2
        return scores.masked_fill(~keys, float("-inf")).softmax(-1)  # (B, H, L, L)

    return rows(), rows(), mask


def attention_kl_solution(**_maps):
    """Mean over heads and real queries q of KL(a_tea[q, ·] ‖ a_stu[q, ·]), over real keys.
    (The notebook's maps, passed to the check, do not change the function.)"""

    def attention_kl(student_attn, teacher_attn, mask):
        # (B, H, L, L) each, mask (B, L) True on real tokens
        log_ratio = teacher_attn.clamp_min(1e-12).log() - student_attn.clamp_min(1e-12).log()
        per_key = teacher_attn * log_ratio * mask[:, None, None, :]  # padded keys: 0
        kl = per_key.sum(-1)  # (B, H, L): one KL per head and query
        queries = mask[:, None, :].expand_as(kl)  # (B, H, L)
        return kl[queries].mean()

    return attention_kl


def _padded_queries_counted(**_maps):
    return lambda s, t, mask: features.attention_map_loss(s, t, None)


@exercise("05.1", "the attention loss with a padding mask",
          solution=attention_kl_solution, wrong=_padded_queries_counted,
          example_context=lambda: dict(zip(("student_attn", "teacher_attn", "mask"),
                                           _attention_case(torch.Generator().manual_seed(9)),
                                           strict=True)))
def _attention_kl(answer, student_attn=None, teacher_attn=None, mask=None) -> str:
    gen = torch.Generator().manual_seed(5)
    cases = [_attention_case(gen), _attention_case(gen, B=2, H=4, L=5)]
    if student_attn is not None:
        cases.append((student_attn, teacher_attn, mask))  # the notebook's own maps
    for a_stu, a_tea, m in cases:
        want = features.attention_map_loss(a_stu, a_tea, m)
        got = torch.as_tensor(call(answer, a_stu, a_tea, m))
        assert got.dim() == 0, f"return one number (the mean), got shape {tuple(got.shape)}."
        everything = features.attention_map_loss(a_stu, a_tea, None)
        hint = (" That is the mean over every query, padding included: average over the real "
                "queries only (mask[:, None, :])." if torch.isclose(got, everything) else
                " Sum the KL over real keys, then average over heads and real queries.")
        assert torch.allclose(got, want, atol=1e-5), (
            f"shape {tuple(a_stu.shape)}: {float(got):.4f} vs "
            f"features.attention_map_loss's {float(want):.4f}.{hint}")
    assert abs(float(call(answer, a_tea, a_tea, m))) < 1e-6, "identical maps must give 0."
    return (f"equals features.attention_map_loss on {len(cases)} padded batches, "
            "0 for identical maps.")


def hidden_loss_solution():
    """FitNets with a projection: mean over real tokens of (1/D)·‖W·h_stu + b − h_tea‖²."""

    def hidden_loss(h_stu, h_tea, W, b, mask):
        # h_stu (B, L, D_stu), h_tea (B, L, D_tea), W (D_tea, D_stu), b (D_tea,), mask (B, L)
        projected = h_stu @ W.T + b  # (B, L, D_tea)
        per_token = ((projected - h_tea) ** 2).mean(-1)  # (B, L)
        return per_token[mask].mean()

    return hidden_loss


def _summed_over_features():
    return lambda h_stu, h_tea, W, b, mask: ((h_stu @ W.T + b - h_tea) ** 2).sum(-1)[mask].mean()


@exercise("05.2", "the hidden-state loss through a projection",
          solution=hidden_loss_solution, wrong=_summed_over_features)
def _hidden_loss(answer) -> str:
    gen = torch.Generator().manual_seed(6)
    B, L, D_stu, D_tea = 3, 5, 8, 16  # a student half as wide as its teacher
    mask = torch.arange(L)[None, :] < torch.tensor([5, 3, 1])[:, None]  # (B, L)
    h_stu, h_tea = torch.randn(B, L, D_stu, generator=gen), torch.randn(B, L, D_tea, generator=gen)
    W, b = torch.randn(D_tea, D_stu, generator=gen) / 3, torch.randn(D_tea, generator=gen)
    fitnets = features.HiddenStateLoss([(0, 0)], student_dim=D_stu, teacher_dim=D_tea)
    with torch.no_grad():
        fitnets.projections[0].weight.copy_(W)
        fitnets.projections[0].bias.copy_(b)
        want = fitnets([h_stu], [h_tea], mask)
    got = torch.as_tensor(call(answer, h_stu, h_tea, W, b, mask))
    ratio = float(got / want)
    hint = (f" It is {ratio:.1f}× too large: the formula divides by D = {D_tea}."
            if abs(ratio - D_tea) < 0.5 else " Project with W and b, then average over "
            "features and over the real tokens only.")
    assert got.dim() == 0 and torch.allclose(got, want, atol=1e-5), (
        f"{float(got):.4f} vs features.HiddenStateLoss's {float(want):.4f}.{hint}")
    padded = h_stu.clone()
    padded[~mask] = 100.0  # padding may hold anything
    assert torch.allclose(torch.as_tensor(call(answer, padded, h_tea, W, b, mask)), want,
                          atol=1e-5), "padded tokens changed your loss: count real tokens only."
    return (f"equals features.HiddenStateLoss with the same W ({D_tea}×{D_stu}) and b; "
            "padding ignored.")


def bayes_ceiling_solution() -> float:
    """The ceiling when the order of a ticket's two issues says nothing (main_first_prob 0.5).

    One-issue tickets (70%) are always right. A two-issue ticket about intents x and y is
    labelled x with weight P(x)·P(second = y | x) = [y related to x] / (6·|related(x)|), and y
    likewise; the best guess takes the larger. The relations are not symmetric — an account
    ticket's second issue can be billing, a billing ticket's is never account — and an intent
    with fewer related ones gives each of them more weight, so the pair says more than a coin
    flip. Here the relations are read off generated tickets, as a reader could.
    """
    corpus = tickets.make_ticket_corpus(3000, seed=0, two_issue_prob=1.0)
    C = len(corpus.class_names)
    related = [{o for y, o in zip(corpus.labels, corpus.other_labels, strict=True) if y == c}
               for c in range(C)]

    def weight(label: int, second: int) -> float:  # P(label, second); each order has half
        return 1 / (C * len(related[label])) if second in related[label] else 0.0

    pairs = [(x, y) for x in range(C) for y in range(x + 1, C)]
    best = sum(max(weight(x, y), weight(y, x)) for x, y in pairs)  # both orders: 2 × 0.5
    return 0.7 + 0.3 * best


@exercise("05.3", "predict the Bayes ceiling when the order says nothing",
          solution=bayes_ceiling_solution, wrong=lambda: 1 - 0.3 * 0.5)
def _bayes_ceiling(answer) -> str:
    want = tickets.bayes_accuracy(two_issue_prob=0.3, main_first_prob=0.5)
    got = float(answer)
    if abs(got - (1 - 0.3 * 0.5)) < 0.003:
        hint = (" That is the rule 'predict the first issue', right on half the two-issue "
                "tickets. The best classifier knows more: which intents a second issue comes "
                "from is not symmetric.")
    else:
        hint = (" One-issue tickets (70%) are always right; for the others, which of the two "
                "intents is likelier to be the label, given the pair?")
    assert abs(got - want) < 0.005, f"you said {got:.3f}.{hint}"
    return (f"tickets.bayes_accuracy(0.3, main_first_prob=0.5) = {want:.3f}: above the "
            f"first-issue rule's 0.850, below the 0.931 of the notebook's tickets.")
