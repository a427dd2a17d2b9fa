"""Losses of the student (supervised + knowledge distillation) and the teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEATURE_WEIGHT = 0.1  # the reference's weight of the point-feature L1 term


def label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against hard labels; logits (..., C), labels (...) int."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long())


def soft_label_loss(logits: torch.Tensor, teacher_probabilities: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the teacher's soft labels (probabilities over the same classes)."""
    log_p = F.log_softmax(logits, dim=-1)
    return -(teacher_probabilities * log_p).sum(dim=-1).mean()


def feature_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return (student - teacher).abs().mean()


def distillation_loss(
    logits: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor | None,
    teacher_probabilities: torch.Tensor,
    teacher_features: torch.Tensor,
    weight: float = 0.5,
) -> torch.Tensor:
    """(1 - w) CE(labels) + w CE(teacher) + 0.1 L1(features); without labels (an unlabelled
    case) the teacher term carries the full weight instead of w."""
    teacher_term = soft_label_loss(logits, teacher_probabilities)
    extra = FEATURE_WEIGHT * feature_loss(features, teacher_features)
    if labels is None:
        return teacher_term + extra
    return (1.0 - weight) * label_loss(logits, labels) + weight * teacher_term + extra


def consistency_loss(student_logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Soft cross-entropy towards a detached target prediction (teacher's semi-supervision)."""
    target = F.softmax(target_logits.detach(), dim=-1)
    return soft_label_loss(student_logits, target)
