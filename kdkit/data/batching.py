"""Text-to-text examples as model inputs: ``(source, target)`` pairs, their splits, token ids,
padded batches and length-grouped batch order."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "TextPair",
    "Seq2SeqSplits",
    "encode_pairs",
    "Seq2SeqCollator",
    "LengthGroupedBatchSampler",
]

TextPair = tuple[str, str]  # (source, target)


@dataclass
class Seq2SeqSplits:
    """Text-to-text examples, ``(source, target)`` pairs, in three disjoint splits."""

    train: list[TextPair]
    validation: list[TextPair]
    test: list[TextPair]

    def __iter__(self) -> Iterator[list[TextPair]]:
        return iter((self.train, self.validation, self.test))




def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[TextPair],
    max_source_len: int = 64,
    max_target_len: int = 32,
) -> list[dict[str, list[int]]]:
    """Token ids of each pair: ``{"input_ids": [...], "labels": [...]}``, unpadded.

    Both end with the tokenizer's end-of-sequence token and are truncated to the given lengths
    (end-of-sequence kept). Pad them per batch with :class:`Seq2SeqCollator`.
    """
    if not pairs:
        return []
    sources = [source for source, _ in pairs]
    targets = [target for _, target in pairs]
    inputs = tokenizer(sources, truncation=True, max_length=max_source_len)["input_ids"]
    labels = tokenizer(text_target=targets, truncation=True, max_length=max_target_len)
    labels = labels["input_ids"]
    return [{"input_ids": i, "labels": t} for i, t in zip(inputs, labels, strict=True)]


@dataclass
class Seq2SeqCollator:
    """Pads a list of :func:`encode_pairs` examples into a batch (dynamic padding).

    Returns ``input_ids`` ``(B, L_src)`` padded with ``pad_token_id``, ``attention_mask``
    ``(B, L_src)`` (1 on real tokens) and ``labels`` ``(B, L_tgt)`` padded with ``-100``, which
    the losses ignore; each padded only to the batch's longest sequence. The model builds its
    decoder inputs from ``labels`` (shifted right, ``-100`` → pad). Examples that carry a
    teacher cache (:func:`kdkit.seq2seq.attach_teacher_topk`: per target position
    ``topk_logits``, ``topk_indices`` ``(l, k)`` and ``lse`` ``(l,)`` tensors) get those
    padded to ``(B, L_tgt, k)`` and ``(B, L_tgt)`` too.
    """

    pad_token_id: int = 0
    label_pad_id: int = -100

    def __call__(self, examples: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("cannot collate an empty batch.")
        B = len(examples)
        Ls = max(len(e["input_ids"]) for e in examples)
        Lt = max(len(e["labels"]) for e in examples)
        input_ids = torch.full((B, Ls), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((B, Ls), dtype=torch.long)
        labels = torch.full((B, Lt), self.label_pad_id, dtype=torch.long)
        for b, e in enumerate(examples):
            n, m = len(e["input_ids"]), len(e["labels"])
            input_ids[b, :n] = torch.tensor(e["input_ids"], dtype=torch.long)
            attention_mask[b, :n] = 1
            labels[b, :m] = torch.tensor(e["labels"], dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        for key in _CACHE_KEYS if _CACHE_KEYS[0] in examples[0] else ():
            first = examples[0][key]  # (l, k) or (l,)
            padded = first.new_zeros((B, Lt, *first.shape[1:]))
            for b, e in enumerate(examples):
                padded[b, : e[key].shape[0]] = e[key]
            batch[key] = padded
        return batch


_CACHE_KEYS = ("topk_logits", "topk_indices", "lse")  # a top-k teacher cache, per position


class LengthGroupedBatchSampler(torch.utils.data.Sampler):
    """Batches of indices of similar length: random batches, little padding.

    Each epoch: shuffle all indices, cut them into mega-batches of ``mega_batch_factor ×
    batch_size``, sort each by length (longest first) and cut it into batches, then shuffle the
    batch order. Every index appears exactly once per epoch. The order depends only on
    ``(seed, epoch)``, so a resumed run sees exactly the batches it would have seen. With
    ``group_by_length=False`` batches are plain random batches. (The Hugging Face Trainer's
    ``group_by_length`` uses the same mega-batch idea.)
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        group_by_length: bool = True,
        mega_batch_factor: int = 50,
    ) -> None:
        if batch_size < 1 or mega_batch_factor < 1:
            raise ValueError(
                f"batch_size and mega_batch_factor must be >= 1, got {batch_size} and "
                f"{mega_batch_factor}."
            )
        if len(lengths) == 0:
            raise ValueError("lengths is empty: there is nothing to batch.")
        self.lengths = [int(n) for n in lengths]
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.mega_batch_factor = mega_batch_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's order ``__iter__`` yields."""
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch, a list of index lists."""
        n = len(self.lengths)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen).tolist() if self.shuffle else list(range(n))
        if self.group_by_length:
            size = self.batch_size * self.mega_batch_factor
            order = [
                i
                for start in range(0, n, size)
                for i in sorted(order[start : start + size], key=lambda i: -self.lengths[i])
            ]
        batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.shuffle and self.group_by_length:
            perm = torch.randperm(len(batches), generator=gen).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches(self.epoch))

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)
