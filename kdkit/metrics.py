"""Metrics: fidelity and calibration of classifiers, the omitted-class bias correction, and the
string metrics that score generated text (exact match, word accuracy and phoneme error rate
for G2P, ROUGE, BLEU).

Accuracy says how often a student is right; these say how it is right. ``agreement`` is how
often a student predicts what its teacher predicts (fidelity), ``expected_calibration_error``
how far its confidence is from its accuracy. ``choose_class_bias`` is Hinton et al.'s (2015,
§3) repair for a class the student never saw: raise that class's logit by a constant chosen on
held-out data. Notebook 04 uses all of them. ``compute_metric`` scores a seq2seq model's
outputs against references (notebook 06); its names are :data:`kdkit.config.METRICS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kdkit.config import ALTERNATIVES, METRICS

__all__ = [
    "agreement",
    "class_recall",
    "calibration_bins",
    "expected_calibration_error",
    "with_class_bias",
    "choose_class_bias",
    "exact_match",
    "word_accuracy",
    "phoneme_error_rate",
    "edit_distance",
    "output_kinds",
    "rouge_scores",
    "bleu_score",
    "compute_metric",
]


def _check_scores(name: str, scores: torch.Tensor) -> None:
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"{name} must have shape (N, C) with C >= 2, got {tuple(scores.shape)}.")
    if not scores.is_floating_point():
        raise ValueError(f"{name} must be floating point (logits or probabilities).")


def _check_labels(labels: torch.Tensor, scores: torch.Tensor) -> None:
    if labels.shape != scores.shape[:1]:
        raise ValueError(
            f"labels must have shape ({scores.shape[0]},) to match the scores, "
            f"got {tuple(labels.shape)}."
        )


def agreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """Fraction of inputs on which two models' argmax predictions agree (fidelity, in [0, 1]).

    Shapes: ``(N, C)`` and ``(N, C)``: logits or probabilities, only the argmax matters.
    """
    _check_scores("logits_a", logits_a)
    _check_scores("logits_b", logits_b)
    if logits_a.shape != logits_b.shape:
        raise ValueError(
            f"the two models' outputs differ in shape: {tuple(logits_a.shape)} vs "
            f"{tuple(logits_b.shape)}."
        )
    return (logits_a.argmax(-1) == logits_b.argmax(-1)).float().mean().item()


def class_recall(logits: torch.Tensor, labels: torch.Tensor, cls: int) -> float:
    """Fraction of the inputs of class ``cls`` predicted as ``cls`` (its recall).

    Shapes: logits ``(N, C)``, labels ``(N,)``.
    """
    _check_scores("logits", logits)
    _check_labels(labels, logits)
    of_class = labels == cls
    if not of_class.any():
        raise ValueError(f"no input has label {cls}: its recall is undefined.")
    return (logits[of_class].argmax(-1) == cls).float().mean().item()


def _check_probs(probs: torch.Tensor) -> None:
    _check_scores("probs", probs)
    if (probs < 0).any() or (probs > 1).any():
        raise ValueError("probs must lie in [0, 1]: pass softmax(logits), not logits.")
    if not torch.allclose(probs.sum(-1), torch.ones(probs.shape[0], dtype=probs.dtype), atol=1e-4):
        raise ValueError("each row of probs must sum to 1: pass softmax(logits), not logits.")


def calibration_bins(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 15
) -> dict[str, torch.Tensor]:
    """Group predictions by confidence into ``num_bins`` equal-width bins over [0, 1].

    Shapes: probs ``(N, C)`` (rows sum to 1), labels ``(N,)``. Confidence is the top
    probability; bin ``b`` holds confidences in ``(b/num_bins, (b+1)/num_bins]``. Returns
    ``{"edges": (num_bins+1,), "confidence": (num_bins,), "accuracy": (num_bins,),
    "count": (num_bins,)}``, with mean confidence and accuracy NaN in empty bins. A
    reliability diagram plots accuracy against confidence (Guo et al., 2017).
    """
    _check_probs(probs)
    _check_labels(labels, probs)
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}.")
    confidence, predicted = probs.max(-1)  # (N,), (N,)
    correct = (predicted == labels).to(probs.dtype)  # (N,)
    edges = torch.linspace(0, 1, num_bins + 1, dtype=probs.dtype)
    # bucketize with right=False puts c in bin b when edges[b] < c <= edges[b+1]
    index = (torch.bucketize(confidence, edges) - 1).clamp(0, num_bins - 1)  # (N,)
    count = torch.bincount(index, minlength=num_bins).to(probs.dtype)
    sum_conf = torch.zeros(num_bins, dtype=probs.dtype).index_add_(0, index, confidence)
    sum_correct = torch.zeros(num_bins, dtype=probs.dtype).index_add_(0, index, correct)
    nan = torch.full_like(count, float("nan"))
    return {
        "edges": edges,
        "confidence": torch.where(count > 0, sum_conf / count.clamp(min=1), nan),
        "accuracy": torch.where(count > 0, sum_correct / count.clamp(min=1), nan),
        "count": count,
    }


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 15
) -> float:
    """ECE: the count-weighted mean gap between accuracy and confidence over confidence bins.

    ``ECE = Σ_b (n_b / N) · |accuracy_b − confidence_b|``, in [0, 1]; 0 for a perfectly
    calibrated model. Shapes: probs ``(N, C)`` (rows sum to 1), labels ``(N,)``. Equal-width
    bins as in :func:`calibration_bins` (Naeini et al., 2015; Guo et al., 2017, use 15).
    """
    bins = calibration_bins(probs, labels, num_bins)
    filled = bins["count"] > 0
    gaps = (bins["accuracy"][filled] - bins["confidence"][filled]).abs()
    weights = bins["count"][filled] / bins["count"].sum()
    return (weights * gaps).sum().item()


def with_class_bias(logits: torch.Tensor, cls: int, bias: float) -> torch.Tensor:
    """A copy of ``logits`` ``(N, C)`` with ``bias`` added to class ``cls``'s logit."""
    _check_scores("logits", logits)
    if not 0 <= cls < logits.shape[1]:
        raise ValueError(f"cls must be a class index in [0, {logits.shape[1]}), got {cls}.")
    shifted = logits.clone()
    shifted[:, cls] += bias
    return shifted


def choose_class_bias(
    logits: torch.Tensor, labels: torch.Tensor, cls: int, biases: Sequence[float]
) -> tuple[float, torch.Tensor]:
    """The smallest bias on class ``cls``'s logit that maximises accuracy on ``(logits, labels)``.

    Pass held-out (validation) logits, never the test set's. Shapes: logits ``(N, C)``,
    labels ``(N,)``. Returns ``(bias, accuracies)`` with ``accuracies[i]`` the accuracy at
    ``biases[i]``. Hinton et al. (2015, §3) raise the bias of the omitted 3s by 3.5.
    """
    _check_labels(labels, logits)
    grid = [float(b) for b in biases]
    if not grid:
        raise ValueError("biases is empty.")
    accuracies = torch.tensor(
        [(with_class_bias(logits, cls, b).argmax(-1) == labels).float().mean().item() for b in grid]
    )
    best = accuracies.max()
    candidates = [b for b, a in zip(grid, accuracies.tolist(), strict=True) if a == best]
    return min(candidates), accuracies


# --------------------------------------------------------------------------- generated text


def _check_lengths(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of predictions equal to their reference (surrounding whitespace ignored)."""
    _check_lengths(predictions, references)
    if not references:
        return 0.0
    hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return 100.0 * hits / len(references)


def word_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of predictions equal to *any* of their reference's alternatives (joined by
    :data:`kdkit.config.ALTERNATIVES`; runs of whitespace count as one space): G2P's word
    accuracy, where *read* may be R EH1 D or R IY1 D."""
    _check_lengths(predictions, references)
    if not references:
        return 0.0
    hits = sum(
        " ".join(p.split()) in {" ".join(a.split()) for a in r.split(ALTERNATIVES)}
        for p, r in zip(predictions, references, strict=True)
    )
    return 100.0 * hits / len(references)


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences: the fewest insertions, deletions and
    substitutions that turn ``a`` into ``b``."""
    row = list(range(len(b) + 1))  # distances from a[:0] to every prefix of b
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def phoneme_error_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Edits over reference tokens, in percent (lower is better): for each prediction the
    closest of its reference's alternatives (fewest edits, then the shorter), summed over the
    corpus — ``100 · Σ edits / Σ reference length``. Tokens split on whitespace."""
    _check_lengths(predictions, references)
    edits = length = 0
    for p, r in zip(predictions, references, strict=True):
        options = [a.split() for a in r.split(ALTERNATIVES)]
        e, n = min((edit_distance(p.split(), a), len(a)) for a in options)
        edits, length = edits + e, length + n
    return 100.0 * edits / max(length, 1)


def output_kinds(predictions: Sequence[str], references: Sequence[str]) -> list[str]:
    """What each output is relative to its reference's listed alternatives (``" | "``):
    ``"listed"`` (equals one of them), ``"blend"`` (equals none but lies on a shortest edit
    path between two of them, ``d(a, o) + d(o, b) = d(a, b)``: a mix of the two, e.g. one's
    start with the other's end) or ``"other"``. A reference with one alternative has no
    blends. Tokens split on whitespace."""
    _check_lengths(predictions, references)
    kinds = []
    for p, r in zip(predictions, references, strict=True):
        options, out = [a.split() for a in r.split(ALTERNATIVES)], p.split()
        if out in options:
            kinds.append("listed")
            continue
        between = any(
            edit_distance(a, out) + edit_distance(out, b) == edit_distance(a, b)
            for i, a in enumerate(options) for b in options[i + 1:]
        )
        kinds.append("blend" if between else "other")
    return kinds


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 in percent (Lin 2004), with the ``rouge-score`` package (stemming on,
    as in the summarisation literature)."""
    from rouge_score import rouge_scorer  # lazily: only summarisation needs it

    _check_lengths(predictions, references)
    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for p, r in zip(predictions, references, strict=True):
        scores = scorer.score(r, p)
        for k in kinds:
            totals[k] += scores[k].fmeasure
    n = max(len(references), 1)
    return {k: 100.0 * v / n for k, v in totals.items()}


def bleu_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (Papineni et al. 2002) with ``sacrebleu``'s standard tokenisation, 0–100."""
    import sacrebleu  # lazily: only translation-like tasks need it

    _check_lengths(predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def compute_metric(name: str, predictions: Sequence[str], references: Sequence[str]) -> float:
    """One score in percent; ``name`` is one of :data:`kdkit.config.METRICS`."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {METRICS}.")
    if name == "exact_match":
        return exact_match(predictions, references)
    if name == "word_accuracy":
        return word_accuracy(predictions, references)
    if name == "phoneme_error_rate":
        return phoneme_error_rate(predictions, references)
    if name == "bleu":
        return bleu_score(predictions, references)
    return rouge_scores(predictions, references)[name]
