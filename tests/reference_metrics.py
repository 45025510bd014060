"""Independent reference implementations that tests compare kdkit's metrics against."""

from __future__ import annotations

import re


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 from the longest common subsequence of lower-cased alphanumeric words."""
    p, r = (re.findall(r"[a-z0-9]+", text.lower()) for text in (prediction, reference))
    lcs = [[0] * (len(r) + 1) for _ in range(len(p) + 1)]
    for i, a in enumerate(p):
        for j, b in enumerate(r):
            lcs[i + 1][j + 1] = lcs[i][j] + 1 if a == b else max(lcs[i][j + 1], lcs[i + 1][j])
    common = lcs[-1][-1]
    return 0.0 if common == 0 else 2 * common / (len(p) + len(r))
