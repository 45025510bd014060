"""Relation-based distillation: match how a batch's examples relate, not what each one is.

Response KD (:mod:`kdkit.losses`) matches each example's output; feature KD
(:mod:`kdkit.features`) each example's hidden state. Relational KD (Park et al. 2019, "Relational
Knowledge Distillation") matches the *structure* of a batch of embeddings instead: the distances
between pairs (RKD-D) and the angles in triplets (RKD-A). Neither needs the student's and the
teacher's widths to agree, and both are unchanged when either embedding space is rotated,
translated or uniformly scaled — a student learns the teacher's geometry, not its coordinates.

Shapes: embeddings ``(N, D_stu)`` and ``(N, D_tea)``, one row per example of the batch, the same
``N``. Gradients flow into both arguments: pass the teacher's embeddings detached (computed under
``torch.no_grad()``), as for every loss in kdkit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pairwise_distances", "rkd_distance_loss", "rkd_angle_loss"]

_EPS = 1e-12  # keeps sqrt differentiable where two embeddings coincide


def _check_embeddings(student: torch.Tensor, teacher: torch.Tensor, min_rows: int) -> None:
    for name, e in (("student_embeddings", student), ("teacher_embeddings", teacher)):
        if not isinstance(e, torch.Tensor) or e.dim() != 2 or not e.is_floating_point():
            shape = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
            raise ValueError(f"{name} must be a float tensor of shape (N, D), got {shape}; "
                             "flatten or pool each example to one vector first.")
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"student and teacher embed different batches: {student.shape[0]} vs "
                         f"{teacher.shape[0]} rows; give both the same N examples, in order.")
    if student.shape[0] < min_rows:
        raise ValueError(f"a relation needs at least {min_rows} examples per batch, got "
                         f"{student.shape[0]}.")


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``‖e_i − e_j‖``: ``(N, D) -> (N, N)``, exactly 0 on the diagonal.

    Computed from differences (not ``‖a‖² + ‖b‖² − 2ab``, which cancels), with a finite
    gradient where two rows coincide.
    """
    diff = embeddings.unsqueeze(1) - embeddings.unsqueeze(0)  # (N, N, D)
    d = diff.pow(2).sum(-1).clamp(min=_EPS).sqrt()  # (N, N)
    return d * (1 - torch.eye(len(embeddings), dtype=d.dtype, device=d.device))


def _at_least_float32(e: torch.Tensor) -> torch.Tensor:
    return e.float() if e.dtype in (torch.float16, torch.bfloat16) else e


def _normalised_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """ψ_D: distances divided by their mean over distinct pairs, ``(N, N)``."""
    d = pairwise_distances(_at_least_float32(embeddings))
    off = ~torch.eye(len(d), dtype=torch.bool, device=d.device)
    return d / d[off].mean().clamp(min=_EPS)


def rkd_distance_loss(
    student_embeddings: torch.Tensor, teacher_embeddings: torch.Tensor
) -> torch.Tensor:
    """RKD-D: Huber loss between the normalised pairwise distances ψ_D of student and teacher.

    ``ψ_D(i, j) = ‖e_i − e_j‖ / μ``, μ the mean distance over the batch's distinct pairs;
    ``mean over i ≠ j of huber(ψ_D^stu(i, j) − ψ_D^tea(i, j))`` (δ = 1, smooth L1). Shapes:
    ``(N, D_stu)``, ``(N, D_tea)``, N ≥ 2; returns a scalar (float32 for half inputs). Park et
    al. 2019, eq. 4–5. The paper's reference code also averages the zero diagonal, which
    scales the loss by (N − 1)/N.
    """
    _check_embeddings(student_embeddings, teacher_embeddings, min_rows=2)
    s = _normalised_distances(student_embeddings)  # (N, N)
    t = _normalised_distances(teacher_embeddings)  # (N, N)
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    return F.smooth_l1_loss(s[off], t[off].to(s.dtype))


def _angles(embeddings: torch.Tensor) -> torch.Tensor:
    """ψ_A: ``cos ∠(e_i, e_j, e_k)`` at vertex j, ``(N, N, N)`` indexed [j, i, k]."""
    e = _at_least_float32(embeddings)
    diff = e.unsqueeze(0) - e.unsqueeze(1)  # (N, N, D): [j, i] = e_i − e_j
    unit = diff / diff.norm(dim=-1, keepdim=True).clamp(min=_EPS)  # 0 where i = j
    return unit @ unit.transpose(1, 2)  # (N, N, N)


def rkd_angle_loss(
    student_embeddings: torch.Tensor, teacher_embeddings: torch.Tensor
) -> torch.Tensor:
    """RKD-A: Huber loss between the angles every triplet forms, student vs teacher.

    ``ψ_A(i, j, k) = ⟨(e_i − e_j)/‖e_i − e_j‖, (e_k − e_j)/‖e_k − e_j‖⟩``, the cosine of the
    angle at ``e_j``; mean of ``huber(ψ_A^stu − ψ_A^tea)`` (δ = 1) over triplets with
    ``i ≠ j ≠ k``. Shapes: ``(N, D_stu)``, ``(N, D_tea)``, N ≥ 3; returns a scalar. Memory
    grows as N³: keep batches to a few hundred. Park et al. 2019, eq. 6–7.
    """
    _check_embeddings(student_embeddings, teacher_embeddings, min_rows=3)
    s, t = _angles(student_embeddings), _angles(teacher_embeddings)  # (N, N, N) each
    N = len(s)
    eye = torch.eye(N, dtype=torch.bool, device=s.device)
    valid = ~(eye[:, :, None] | eye[:, None, :] | eye[None, :, :])  # j≠i, j≠k, i≠k
    return F.smooth_l1_loss(s[valid], t[valid].to(s.dtype))
