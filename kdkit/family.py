"""The teacher–student family: who teaches whom, beyond one teacher and one student.

Response KD (:func:`kdkit.train.distill_classifier`) distils one trained teacher into one
student. Its relatives, for the classifiers of Parts I–II (notebook 08):

- :class:`EnsembleTeacher` — several teachers whose predictions are averaged into one soft
  target (Hinton, Vinyals & Dean 2015, §2 and §5);
- :func:`distill_chain` — multi-stage distillation, teacher → teacher assistant → student
  (Mirzadeh et al. 2020, "Improved Knowledge Distillation via Teacher Assistant");
- :func:`mutual_learning` — students that teach each other while they train, no teacher
  (Zhang et al. 2018, "Deep Mutual Learning");
- :func:`distill_relations` — relation-based KD: match the distances and angles of a batch's
  embeddings (Park et al. 2019, RKD; the losses live in :mod:`kdkit.relations`), alone or with
  response KD;
- born-again networks (Furlanello et al. 2018) need nothing new: a student of the teacher's own
  size, distilled with :func:`kdkit.train.distill_classifier`.

Shapes: inputs ``X`` ``(N, F)``, labels ``y`` ``(N,)`` (:data:`kdkit.train.NO_LABEL` marks a
transfer example), logits ``(B, C)``. Every loop draws its mini-batch order from torch's global
RNG exactly as :func:`kdkit.train.train_classifier` does (one ``randperm`` per epoch), so the same
seed gives every arm the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import trange

from kdkit.losses import (
    alpha_mix,
    check_temperature,
    check_unit_interval,
    hard_cross_entropy,
    kd_kl_loss,
)
from kdkit.relations import rkd_angle_loss, rkd_distance_loss
from kdkit.seed import set_seed
from kdkit.train import NO_LABEL, PrecomputedTeacher, distill_classifier

__all__ = [
    "EnsembleTeacher",
    "embedder",
    "distill_chain",
    "mutual_learning",
    "distill_relations",
]

COMBINE = ("geometric", "arithmetic")


class EnsembleTeacher(nn.Module):
    """Several classifiers as one teacher: ``(B, F) -> (B, C)`` log-probabilities of their mean.

    ``combine="geometric"`` averages the members' log-probabilities, ``mean_k log p_k``: up to a
    constant this is the mean of their logits, so ``softmax(output / T)`` is the normalised
    geometric mean of the members' distributions at every temperature. ``"arithmetic"`` returns
    ``log mean_k p_k`` (at ``T = 1``, the mean of the members' probabilities). Hinton et al.
    (2015), §2: "the arithmetic or geometric mean of their individual predictive distributions".
    The members are frozen: put in eval mode with the ensemble, run under ``torch.no_grad()``.
    """

    def __init__(self, members: Sequence[nn.Module], combine: str = "geometric") -> None:
        super().__init__()
        if len(members) < 1:
            raise ValueError("an ensemble needs at least one member.")
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}.")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(x) for m in self.members])  # (K, B, C)
        if logits.dim() != 3 or len({m.shape for m in logits.unbind()}) != 1:
            raise ValueError(f"members must return (B, C) logits, got {tuple(logits.shape)}.")
        log_p = logits.float().log_softmax(-1)  # (K, B, C)
        if self.combine == "geometric":
            return log_p.mean(0)  # (B, C)
        return log_p.logsumexp(0) - torch.log(torch.tensor(float(len(self.members))))  # (B, C)


def embedder(model: nn.Module) -> nn.Sequential:
    """Everything but the last layer of an ``nn.Sequential`` classifier ending in ``nn.Linear``:
    ``(B, F) -> (B, D)``, the embedding its classifier head reads (shares the weights)."""
    if not isinstance(model, nn.Sequential) or not isinstance(model[-1], nn.Linear):
        raise ValueError(f"need an nn.Sequential ending in nn.Linear (its head), got "
                         f"{type(model).__name__}; build models with kdkit.models.mlp/small_cnn.")
    return model[:-1]


def _check_xy(X: torch.Tensor, y: torch.Tensor) -> None:
    if X.dim() != 2 or y.dim() != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (N, F) and y (N,) with the same N, got {tuple(X.shape)} "
                         f"and {tuple(y.shape)}.")


def distill_chain(
    models: Sequence[nn.Module],
    X: torch.Tensor,
    y: torch.Tensor | None,
    *,
    T: float,
    alpha: float,
    num_epochs: int,
    seed: int | None = None,
    **options,
) -> list[nn.Module]:
    """Multi-stage KD: ``models[0]`` (trained) teaches ``models[1]``, which teaches ``models[2]``...

    Each stage is :func:`kdkit.train.distill_classifier` from the previous model's logits on
    ``X``, computed once (:class:`kdkit.train.PrecomputedTeacher`; no jitter). With ``seed``,
    every stage starts from :func:`kdkit.set_seed(seed)`: its mini-batches are those of a
    one-stage run with that seed. ``options`` go to ``distill_classifier`` (``lr``,
    ``batch_size``, ...). Returns the models, trained in place. Teacher → teacher assistant →
    student: Mirzadeh et al. (2020).
    """
    if len(models) < 2:
        raise ValueError(f"a chain needs a teacher and at least one student, got {len(models)}.")
    if "jitter" in options:
        raise ValueError("distill_chain precomputes each teacher's logits on X: no jitter.")
    for teacher, student in zip(models[:-1], models[1:], strict=True):
        if seed is not None:
            set_seed(seed)
        distill_classifier(student, PrecomputedTeacher(teacher, X), X, y, T=T, alpha=alpha,
                           num_epochs=num_epochs, **options)
    return list(models)


def mutual_learning(
    students: Sequence[nn.Module],
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    T: float = 1.0,
    alpha: float = 0.5,
    num_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "mutual learning",
) -> dict[str, list[list[float]]]:
    """Deep mutual learning: K ≥ 2 students trained together, each also imitating the others.

    Student k minimises ``(1 − alpha)·CE(y, p_k) + alpha · mean_{j≠k} T²·KL(p_j ‖ p_k)`` with
    the peers' predictions ``p_j`` on the same batch detached (targets, as a teacher's are).
    Zhang et al. (2018), eq. 6 (their weights are 1 and 1, ``alpha = 0.5`` up to a factor 2,
    ``T = 1``); here all students step at once on the same batch, from the peers' predictions
    before the step (the paper updates them in turn). Each has its own AdamW. Returns
    ``{"loss": [[mean loss of each student] per epoch]}``.
    """
    _check_xy(X, y)
    T = check_temperature(T)
    alpha = check_unit_interval("alpha", alpha)
    if len(students) < 2 or len({id(s) for s in students}) != len(students):
        raise ValueError("mutual learning needs at least two distinct students.")
    opts = [torch.optim.AdamW(s.parameters(), lr=lr, weight_decay=0.0) for s in students]
    history: dict[str, list[list[float]]] = {"loss": []}
    for _ in trange(num_epochs, desc=desc, disable=not progress):
        totals = [0.0] * len(students)
        order = torch.randperm(X.shape[0])
        for s in students:
            s.train()
        for start in range(0, X.shape[0], batch_size):
            idx = order[start : start + batch_size]
            logits = [s(X[idx]) for s in students]  # K × (b, C)
            for k, opt in enumerate(opts):
                hard = hard_cross_entropy(logits[k], y[idx], ignore_index=NO_LABEL)
                peers = [kd_kl_loss(logits[k], z.detach(), T=T)
                         for j, z in enumerate(logits) if j != k]
                loss = alpha_mix(hard, torch.stack(peers).mean(), alpha)
                opt.zero_grad()
                loss.backward()
                opt.step()
                totals[k] += loss.item() * len(idx)
        history["loss"].append([t / X.shape[0] for t in totals])
    for s in students:
        s.eval()
    return history


def distill_relations(
    student: nn.Sequential,
    teacher: nn.Module | None,
    teacher_embedder: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    T: float = 4.0,
    alpha: float = 0.0,
    distance_weight: float = 1.0,
    angle_weight: float = 2.0,
    angle_rows: int | None = 32,
    num_epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "RKD",
) -> dict[str, list[float]]:
    """Relation-based KD: response loss plus RKD distance and angle losses on embeddings.

    ``loss = (1 − alpha)·CE + alpha·T²·KL(p_tea ‖ p_stu) + distance_weight·RKD-D +
    angle_weight·RKD-A``, the RKD terms between the student's embedding (:func:`embedder`,
    ``(b, D_stu)``) and ``teacher_embedder(x)`` ``(b, D_tea)``. ``alpha = 0`` is RKD with the
    task loss only (``teacher`` may then be None). The angle loss costs ``O(b³)``: with
    ``angle_rows`` it sees only the first rows of each (shuffled) batch. Park et al. (2019):
    weights 1 (distance) and 2 (angle). Returns ``{"loss": [...]}`` per epoch.
    """
    _check_xy(X, y)
    T = check_temperature(T)
    alpha = check_unit_interval("alpha", alpha)
    if teacher is None and alpha > 0:
        raise ValueError(f"alpha={alpha} weighs a response term: pass the teacher.")
    if min(distance_weight, angle_weight) < 0 or (angle_rows is not None and angle_rows < 3):
        raise ValueError("weights must be >= 0 and angle_rows >= 3 (a triplet) or None.")
    body, head = embedder(student), student[-1]
    for m in (teacher, teacher_embedder):
        if m is not None:
            m.eval()
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    history: dict[str, list[float]] = {"loss": []}
    for _ in trange(num_epochs, desc=desc, disable=not progress):
        student.train()
        total = 0.0
        order = torch.randperm(X.shape[0])
        for start in range(0, X.shape[0], batch_size):
            idx = order[start : start + batch_size]
            with torch.no_grad():
                emb_tea = teacher_embedder(X[idx])  # (b, D_tea)
                logits_tea = teacher(X[idx]) if alpha > 0 else None  # (b, C)
            emb = body(X[idx])  # (b, D_stu)
            logits = head(emb)  # (b, C)
            hard = hard_cross_entropy(logits, y[idx], ignore_index=NO_LABEL)
            soft = kd_kl_loss(logits, logits_tea, T=T) if alpha > 0 else torch.zeros(())
            a = slice(None, angle_rows)
            loss = (alpha_mix(hard, soft, alpha) + distance_weight * rkd_distance_loss(emb, emb_tea)
                    + angle_weight * rkd_angle_loss(emb[a], emb_tea[a]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history["loss"].append(total / X.shape[0])
    student.eval()
    return history
