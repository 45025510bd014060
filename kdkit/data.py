"""Offline data for the course: nothing here downloads anything.

Digits: scikit-learn's 1,797 handwritten 8×8 digits ship inside the package (Part I, Part II).
Support tickets: a seeded generator of short labelled texts over six overlapping intents,
with a word-level tokenizer (notebook 05).
Text-to-text tasks, T5 style: seeded synthetic tasks with task prefixes, collators and
length-grouped batches (notebook 06). Only :func:`load_text_pairs` may download, and only when
asked for a hub dataset.
"""

from __future__ import annotations

import calendar
import math
import os
import random
import re
import socket
import urllib.parse
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

if TYPE_CHECKING:  # transformers is imported lazily: it takes seconds to import
    from transformers import PreTrainedTokenizerBase

__all__ = ["DigitsSplit", "load_digits_split", "jitter_images"]


@dataclass
class DigitsSplit:
    """Digits as float tensors in [0, 1]: images flattened to 64 pixels, labels 0–9."""

    X_train: torch.Tensor  # (N_train, 64) float32
    y_train: torch.Tensor  # (N_train,) long
    X_test: torch.Tensor  # (N_test, 64) float32
    y_test: torch.Tensor  # (N_test,) long

    @property
    def class_names(self) -> list[str]:
        return [str(d) for d in range(10)]


def load_digits_split(test_size: float = 0.4, seed: int = 0) -> DigitsSplit:
    """scikit-learn's digits, split stratified by class (same split for the same seed)."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}.")
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixel intensities 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    tensors = (torch.from_numpy(a) for a in (X_tr, y_tr, X_te, y_te))
    return DigitsSplit(*tensors)


def jitter_images(X: torch.Tensor, max_shift: int = 1, side: int = 8) -> torch.Tensor:
    """Shift each flattened ``side×side`` image by up to ``max_shift`` pixels (zero fill).

    Shapes: ``(N, side*side) -> (N, side*side)``. Uses torch's global RNG, so it is
    reproducible under :func:`kdkit.set_seed`. Hinton et al. (2015) jitter MNIST by ±2 pixels.
    """
    if max_shift <= 0:
        return X
    n = X.shape[0]
    images = X.reshape(n, side, side)
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # (N, side+2m, side+2m)
    dy = torch.randint(0, 2 * max_shift + 1, (n,))
    dx = torch.randint(0, 2 * max_shift + 1, (n,))
    rows = (dy[:, None] + torch.arange(side)[None, :])[:, :, None]  # (N, side, 1)
    cols = (dx[:, None] + torch.arange(side)[None, :])[:, None, :]  # (N, 1, side)
    out = padded[torch.arange(n)[:, None, None], rows, cols]  # (N, side, side)
    return out.reshape(n, side * side)


# --------------------------------------------------------- support tickets (notebook 05)

# Six intents of a web shop's support inbox. Related intents share words on purpose ("charged",
# "order", "login", "address", ...), and a ticket may raise two issues, so some tickets are
# genuinely ambiguous: a teacher's soft labels then say which intents resemble each other.
TICKET_CLASSES = ("billing", "refund", "shipping", "order change", "account", "app bug")

_PRODUCTS = (
    "headphones", "laptop", "jacket", "shoes", "keyboard", "monitor", "backpack", "blender",
    "camera", "charger", "lamp", "watch", "speaker", "printer", "sofa", "kettle", "tablet", "mug",
)  # fmt: skip
_WHEN = ("yesterday", "today", "last week", "on monday", "this morning", "twice now")
_OPENERS = ("hi", "hello", "hey there", "good morning", "urgent", "quick question", "hi team")
_CLOSERS = (
    "please help", "thanks", "thank you", "asap please", "what should i do", "any update",
    "this is frustrating", "kind regards",
)  # fmt: skip
_JOINERS = ("and", "also", "and also", "plus", "but also")

# Clause templates per class (at most 8 words); {product} and {when} are filled at random.
_CLAUSES: dict[str, tuple[str, ...]] = {
    "billing": (
        "i was charged twice for my {product}",
        "my card was charged {when} for nothing",
        "the invoice shows the wrong amount",
        "why is there an extra fee",
        "i see two payments for one order",
        "my subscription charged my card without warning",
        "the receipt price is higher than listed",
        "please explain the charge from {when}",
        "my discount code was not applied at payment",
    ),
    "refund": (
        "i want a refund for the {product}",
        "i returned the {product} but got no refund",
        "please give my money back for the {product}",
        "when will the refund reach my card",
        "the {product} broke i want my money back",
        "the refund you promised {when} never came",
        "how long does a refund take",
        "i sent the {product} back reverse the charge",
    ),
    "shipping": (
        "my {product} has not arrived yet",
        "tracking says delivered but no package came",
        "my package is stuck in transit",
        "the {product} went to the wrong address",
        "the delivery is late since {when}",
        "the {product} arrived damaged in the box",
        "when will my order be shipped",
        "the {product} was delivered to my neighbour",
    ),
    "order change": (
        "please cancel my order for the {product}",
        "i need to change my delivery address",
        "can i add a {product} to my order",
        "i ordered the wrong size please change it",
        "cancel the order i placed {when}",
        "swap the {product} in my order please",
        "update the shipping address before the order ships",
        "remove the {product} from my order",
    ),
    "account": (
        "i cannot log in to my account",
        "the password reset email never arrives",
        "someone changed the email on my account",
        "how do i delete my account",
        "my account is locked after login attempts",
        "i want to change my profile name",
        "the verification code does not work",
        "my saved card disappeared from my account",
    ),
    "app bug": (
        "the app crashes when i open my cart",
        "the website shows an error when i pay",
        "the checkout page keeps loading forever",
        "the app freezes on the login screen",
        "the payment page gives an error code",
        "pictures of the {product} do not load",
        "the app keeps logging me out {when}",
        "the search button does nothing",
    ),
}

# Which intents a second issue in the same ticket usually comes from.
_RELATED: dict[str, tuple[str, ...]] = {
    "billing": ("refund", "app bug", "order change"),
    "refund": ("billing", "order change", "shipping"),
    "shipping": ("order change", "refund"),
    "order change": ("shipping", "refund", "billing"),
    "account": ("app bug", "billing"),
    "app bug": ("account", "billing"),
}


@dataclass
class TextCorpus:
    """Labelled sentences: ``texts[i]`` has class ``labels[i]`` (an index into ``class_names``).

    ``other_labels[i]`` is the class of a ticket's second issue, or -1 for one-issue tickets:
    what a reader would need to know to see why some tickets are ambiguous.
    """

    texts: list[str]
    labels: list[int]
    class_names: tuple[str, ...]
    other_labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


def make_ticket_corpus(
    num_examples: int,
    seed: int = 0,
    *,
    two_issue_prob: float = 0.3,
    main_first_prob: float = 0.75,
    ref_prob: float = 0.15,
) -> TextCorpus:
    """Synthetic customer-support tickets over :data:`TICKET_CLASSES` (balanced), offline.

    A ticket is ``[opener] clause [closer] [ref NNNN]``, or, with probability
    ``two_issue_prob``, ``clause joiner clause [ref NNNN]`` where the second issue comes from
    a related class. The label is the main issue, written first with probability
    ``main_first_prob``: the other tickets state their labelled issue second, so two-issue
    tickets are ambiguous by construction and no classifier gets all of them right.
    ``ref NNNN`` adds rare order numbers (out of vocabulary after ``min_freq`` filtering).
    Shares words between related classes on purpose. Texts have at most 20 words. The same
    ``seed`` gives the same corpus; different seeds give independent splits. Notebook 05.
    """
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1, got {num_examples}.")
    for name, p in [
        ("two_issue_prob", two_issue_prob),
        ("main_first_prob", main_first_prob),
        ("ref_prob", ref_prob),
    ]:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}.")
    rng = random.Random(seed)

    def clause(name: str) -> str:
        template = rng.choice(_CLAUSES[name])
        return template.format(product=rng.choice(_PRODUCTS), when=rng.choice(_WHEN))

    texts, labels, other_labels = [], [], []
    for i in range(num_examples):
        label = i % len(TICKET_CLASSES)
        other_label = -1
        parts = [clause(TICKET_CLASSES[label])]
        if rng.random() < two_issue_prob:
            other_label = TICKET_CLASSES.index(rng.choice(_RELATED[TICKET_CLASSES[label]]))
            other = clause(TICKET_CLASSES[other_label])
            if rng.random() >= main_first_prob:
                parts.insert(0, other)  # the labelled issue comes second
            else:
                parts.append(other)
            parts.insert(1, rng.choice(_JOINERS))
        else:  # one issue: room for a greeting and a sign-off
            if rng.random() < 0.5:
                parts.insert(0, rng.choice(_OPENERS))
            if rng.random() < 0.4:
                parts.append(rng.choice(_CLOSERS))
        if rng.random() < ref_prob:
            parts.append(f"ref {rng.randint(1000, 9999)}")
        texts.append(" ".join(parts))
        labels.append(label)
        other_labels.append(other_label)
    order = list(range(num_examples))
    rng.shuffle(order)
    return TextCorpus(
        [texts[i] for i in order],
        [labels[i] for i in order],
        TICKET_CLASSES,
        [other_labels[i] for i in order],
    )


class WordTokenizer:
    """A word-level tokenizer with a fixed vocabulary: ids 0, 1, 2 are ``[PAD]``, ``[UNK]``,
    ``[CLS]``.

    Text is lower-cased and split into runs of letters, digits and apostrophes; a word outside
    the vocabulary becomes ``[UNK]``. Encoding puts ``[CLS]`` first: as in BERT, a classifier
    reads the sentence off that position's final hidden state. Build one from training texts
    with :meth:`from_texts`.
    """

    PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
    pad_id, unk_id, cls_id = 0, 1, 2
    specials = (PAD, UNK, CLS)

    def __init__(self, vocab: Sequence[str]) -> None:
        vocab = list(vocab)
        if tuple(vocab[:3]) != self.specials:
            raise ValueError(f"vocab must start with {self.specials}, got {vocab[:3]}.")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab has duplicate entries.")
        self.vocab = vocab
        self.ids = {word: i for i, word in enumerate(vocab)}

    @classmethod
    def from_texts(cls, texts: Sequence[str], min_freq: int = 1) -> WordTokenizer:
        """Vocabulary of every word seen at least ``min_freq`` times, most frequent first
        (ties alphabetically, so the same texts always give the same ids)."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}.")
        counts = Counter(word for text in texts for word in cls.split(text))
        words = sorted(
            (w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w)
        )
        return cls([*cls.specials, *words])

    @staticmethod
    def split(text: str) -> list[str]:
        """``"Hi, my order #12!" -> ["hi", "my", "order", "12"]``."""
        return re.findall(r"[a-z0-9']+", text.lower())

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Token ids of one text: ``cls_id``, then one id per word (``unk_id`` if unknown)."""
        return [self.cls_id] + [self.ids.get(word, self.unk_id) for word in self.split(text)]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Words of ``ids`` joined by spaces, ``[PAD]`` and ``[CLS]`` dropped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return " ".join(self.vocab[i] for i in ids if i not in (self.pad_id, self.cls_id))

    def tokens(self, text: str) -> list[str]:
        """What the model sees, as strings: ``["[CLS]", "hi", "[UNK]", ...]``."""
        return [self.vocab[i] for i in self.encode(text)]

    def __call__(
        self, texts: Sequence[str], max_len: int = 24
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode, truncate to ``max_len`` tokens (``[CLS]`` included) and right-pad to the
        longest text.

        Returns ``input_ids`` ``(N, L)`` long and ``attention_mask`` ``(N, L)`` bool (True on
        real tokens), with ``L = min(max_len, longest text)``.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}.")
        encoded = [self.encode(text)[:max_len] for text in texts]
        L = max((len(e) for e in encoded), default=0)
        input_ids = torch.full((len(encoded), L), self.pad_id, dtype=torch.long)
        for i, e in enumerate(encoded):
            input_ids[i, : len(e)] = torch.tensor(e, dtype=torch.long)
        return input_ids, input_ids != self.pad_id


@dataclass
class EncodedText:
    """A tokenized, padded text split: what the Transformer loops in :mod:`kdkit.train` take."""

    input_ids: torch.Tensor  # (N, L) long, padded with the tokenizer's pad_id on the right
    attention_mask: torch.Tensor  # (N, L) bool, True on real tokens
    labels: torch.Tensor  # (N,) long

    def __post_init__(self) -> None:
        N, L = self.input_ids.shape
        if tuple(self.attention_mask.shape) != (N, L) or self.attention_mask.dtype != torch.bool:
            raise ValueError(
                f"attention_mask must be a bool tensor of shape {(N, L)}, got "
                f"{tuple(self.attention_mask.shape)} {self.attention_mask.dtype}."
            )
        if tuple(self.labels.shape) != (N,):
            raise ValueError(f"labels must have shape ({N},), got {tuple(self.labels.shape)}.")

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def subset(self, index: torch.Tensor | slice) -> EncodedText:
        """The examples at ``index`` (a slice, an index tensor or a bool mask)."""
        return EncodedText(self.input_ids[index], self.attention_mask[index], self.labels[index])


def encode_corpus(corpus: TextCorpus, tokenizer: WordTokenizer, max_len: int = 24) -> EncodedText:
    """Tokenize a :class:`TextCorpus`: ``input_ids`` and ``attention_mask`` ``(N, L)``,
    ``labels`` ``(N,)``."""
    input_ids, attention_mask = tokenizer(corpus.texts, max_len=max_len)
    return EncodedText(input_ids, attention_mask, torch.tensor(corpus.labels, dtype=torch.long))


__all__ += [  # notebook 05
    "TICKET_CLASSES",
    "TextCorpus",
    "make_ticket_corpus",
    "WordTokenizer",
    "EncodedText",
    "encode_corpus",
]


# ------------------------------------------------- text-to-text tasks, T5 style (notebook 06)

# A source is "<task prefix>: <input>", as in T5 (Raffel et al. 2020, §2.4): one model, several
# tasks, the prefix says which. Every task maps an underlying value (a date, a number, a time)
# to a source in one of several surface forms and to one canonical target.
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}

TextPair = tuple[str, str]  # (source, target)


def number_to_words(n: int) -> str:
    """English words of ``0 <= n <= 9999``: ``347 -> "three hundred forty seven"``."""
    if not 0 <= n <= 9999:
        raise ValueError(f"number_to_words covers 0..9999, got {n}.")
    if n < 20:
        return _ONES[n]
    words = []
    if n >= 1000:
        words += [_ONES[n // 1000], "thousand"]
        n %= 1000
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n > 0:
        words.append(_ONES[n])
    return " ".join(words)


def _date_sources(year: int, month: int, day: int) -> tuple[str, ...]:
    name = _MONTHS[month - 1]
    return tuple(
        "date: " + form
        for form in (
            f"{name} {day}, {year}",  # March 3, 1999
            f"{day} {name} {year}",  # 3 March 1999
            f"{month:02d}/{day:02d}/{year}",  # 03/03/1999 (US order)
            f"{name[:3]} {day} {year}",  # Mar 3 1999
            f"the {day}{_ORDINAL_SUFFIX.get(day, 'th')} of {name} {year}",  # the 3rd of March 1999
        )
    )


def _date_example(rng: random.Random) -> tuple[object, str, str]:
    year, month = rng.randint(1900, 2099), rng.randint(1, 12)
    day = rng.randint(1, calendar.monthrange(year, month)[1])
    source = rng.choice(_date_sources(year, month, day))
    return (year, month, day), source, f"{year:04d}-{month:02d}-{day:02d}"


def _number_example(rng: random.Random) -> tuple[object, str, str]:
    n = rng.randint(0, 9999)
    return n, f"number: {n}", number_to_words(n)


def _time_sources(hour: int, minute: int) -> tuple[str, ...]:
    h12, half = (hour % 12 or 12), ("am" if hour < 12 else "pm")
    if minute == 0:
        spoken = f"{h12} {half}"  # 7 pm
    elif minute <= 30:
        spoken = f"{minute} past {h12} {half}"  # 5 past 7 pm
    else:  # 20 to 8 pm: the next hour, whose am/pm may differ (11:40 pm is 20 to 12 am)
        spoken = f"{60 - minute} to {h12 % 12 + 1} {'am' if (hour + 1) % 24 < 12 else 'pm'}"
    forms = (f"{h12}:{minute:02d} {half}", f"{h12}.{minute:02d}{half}", spoken)  # 7:05 pm, 7.05pm
    return tuple("time: " + form for form in forms)


def _time_example(rng: random.Random) -> tuple[object, str, str]:
    hour, minute = rng.randint(0, 23), rng.randint(0, 59)
    return (hour, minute), rng.choice(_time_sources(hour, minute)), f"{hour:02d}:{minute:02d}"


def task_vocabulary_texts(tasks: Sequence[str] = ("date", "number", "time")) -> list[str]:
    """Texts that together hold every word and symbol the ``tasks`` can produce (all months in
    every form, every number word, every time form), for building a tokenizer that has no
    unknown words on any split: ``build_word_tokenizer(train_texts + task_vocabulary_texts())``.
    """
    texts: list[str] = []
    for task in tasks:
        if task == "date":
            for month in range(1, 13):
                for day in range(1, calendar.monthrange(2000, month)[1] + 1):
                    texts += [*_date_sources(2000, month, day), f"2000-{month:02d}-{day:02d}"]
        elif task == "number":
            texts += [f"number: {n} {number_to_words(n)}" for n in range(1001)]
        elif task == "time":
            for hour in range(24):
                for minute in range(60):
                    texts += [*_time_sources(hour, minute), f"{hour:02d}:{minute:02d}"]
        else:
            raise ValueError(f"unknown task {task!r}; choose from {TEXT_TASKS}.")
    return texts


# name -> (generator of (key, source, target), number of distinct keys)
_TASKS = {
    "date": (_date_example, 200 * 365),
    "number": (_number_example, 10_000),
    "time": (_time_example, 24 * 60),
}
TEXT_TASKS = tuple(_TASKS)


@dataclass
class Seq2SeqSplits:
    """Text-to-text examples, ``(source, target)`` pairs, in three disjoint splits."""

    train: list[TextPair]
    validation: list[TextPair]
    test: list[TextPair]

    def __iter__(self) -> Iterator[list[TextPair]]:
        return iter((self.train, self.validation, self.test))


def make_text_tasks(
    tasks: Sequence[str] = ("date", "number"),
    num_train: int = 4000,
    num_val: int = 200,
    num_test: int = 500,
    seed: int = 0,
) -> Seq2SeqSplits:
    """Synthetic text-to-text tasks with T5-style prefixes, generated offline from ``seed``.

    ``date: March 3, 1999`` → ``1999-03-03`` (five input forms); ``number: 347`` →
    ``three hundred forty seven`` (0–9999); ``time: 20 to 8 pm`` → ``19:40`` (three forms).
    Counts are totals, shared equally among ``tasks``. The splits are disjoint by underlying
    value (a test date never appears in training in any form); the test split is drawn first,
    so it stays the same when ``num_train`` changes. Each split is shuffled across tasks.
    """
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in _TASKS]
    if not tasks or unknown:
        raise ValueError(f"tasks must be a non-empty selection of {TEXT_TASKS}, got {tasks}.")
    for name, n in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"{name} must be an int >= 0, got {n!r}.")
    splits: dict[str, list[TextPair]] = {"test": [], "validation": [], "train": []}
    counts = {"test": num_test, "validation": num_val, "train": num_train}
    for t, task in enumerate(tasks):
        generate, capacity = _TASKS[task]
        share = {k: n // len(tasks) + (t < n % len(tasks)) for k, n in counts.items()}
        if sum(share.values()) > capacity:
            raise ValueError(
                f"task {task!r} has only {capacity} distinct values but {sum(share.values())} "
                f"examples were asked of it; splits disjoint by value need fewer."
            )
        # One generator per task (crc32, not hash(): stable across runs), so adding a task
        # does not change the others' examples.
        rng = random.Random(seed * 1_000_003 + zlib.crc32(task.encode()))
        seen: set = set()
        for split in ("test", "validation", "train"):  # test first: stable under num_train
            while share[split]:
                key, source, target = generate(rng)
                if key not in seen:
                    seen.add(key)
                    splits[split].append((source, target))
                    share[split] -= 1
    shuffle = random.Random(seed)
    for examples in splits.values():
        shuffle.shuffle(examples)
    return Seq2SeqSplits(splits["train"], splits["validation"], splits["test"])


# `datasets` names -> (source field, target field, task prefix) for load_text_pairs.
HUB_TEXT_DATASETS = {
    "EdinburghNLP/xsum": ("document", "summary", "summarize: "),
    "xsum": ("document", "summary", "summarize: "),
    "abisee/cnn_dailymail": ("article", "highlights", "summarize: "),
    "cnn_dailymail": ("article", "highlights", "summarize: "),
}


def load_text_pairs(
    name: str = "EdinburghNLP/xsum",
    *,
    config_name: str | None = None,
    data_files: str | dict[str, str] | None = None,
    source_field: str | None = None,
    target_field: str | None = None,
    prefix: str | None = None,
    num_train: int | None = None,
    num_val: int | None = None,
    num_test: int | None = None,
) -> Seq2SeqSplits:
    """A real text-to-text dataset through ``datasets.load_dataset`` (the GPU preset's data).

    Default: XSum summarisation, ``document`` → ``summary`` with the prefix ``summarize: ``
    (Narayan et al. 2018). Fields and prefix default from :data:`HUB_TEXT_DATASETS`; for other
    data (e.g. ``load_text_pairs("json", data_files={"train": ..., "validation": ...,
    "test": ...}, source_field=..., target_field=...)``) pass them; local data with columns
    ``document``/``summary``, ``article``/``highlights`` or ``source``/``target`` needs none
    (so ``--dataset DIR`` works for a directory of ``train``/``validation``/``test`` files).
    A hub dataset that still ships a loading script (unsupported since ``datasets`` 4) is read
    from the Hub's Parquet export instead. ``num_*`` keep the first N
    examples of a split (None = all). A hub name downloads on first use; without network it
    fails within seconds with what to do instead (see :func:`kdkit.models.hub_offline`).
    """
    import datasets  # lazily: the offline path of the course never needs it

    src_default, tgt_default, prefix_default = HUB_TEXT_DATASETS.get(name, (None, None, ""))
    source_field = source_field or src_default
    target_field = target_field or tgt_default
    prefix = prefix_default if prefix is None else prefix
    local = data_files is not None or name in _LOCAL_BUILDERS or Path(name).exists()
    if not local and (source_field is None or target_field is None):
        raise ValueError(
            f"{name!r} is not in HUB_TEXT_DATASETS {sorted(HUB_TEXT_DATASETS)}: call "
            f"kdkit.data.load_text_pairs with source_field= and target_field= (the columns "
            f"holding input and output text), or add it to HUB_TEXT_DATASETS."
        )
    if not local:
        _fail_fast_if_hub_unreachable(name, "dataset")
    try:
        try:
            raw = datasets.load_dataset(name, config_name, data_files=data_files)
        except RuntimeError as err:
            # datasets >= 4 no longer runs loading scripts; the Hub keeps an automatic Parquet
            # export of most script datasets on the refs/convert/parquet branch.
            if local or "scripts are no longer supported" not in str(err):
                raise
            raw = datasets.load_dataset(
                name, config_name or "default", revision="refs/convert/parquet"
            )
    except (OSError, ConnectionError, FileNotFoundError, ValueError) as err:
        if local:
            raise
        raise OSError(_hub_help(name, "dataset", err)) from err
    if source_field is None or target_field is None:  # local data: well-known column names
        columns = next(iter(raw.values())).column_names
        known = [pair for pair in _KNOWN_COLUMNS if set(pair) <= set(columns)]
        if not known:
            raise ValueError(
                f"{name!r} has columns {columns}; none of the known input/output pairs "
                f"{_KNOWN_COLUMNS}. Pass source_field= and target_field=."
            )
        source_field, target_field = known[0]
    limits = {"train": num_train, "validation": num_val, "test": num_test}
    missing = [split for split in limits if split not in raw]
    if missing:
        raise ValueError(
            f"dataset {name!r} has splits {sorted(raw)}, but train, validation and test are "
            f"needed (missing {missing}); for local files pass data_files={{'train': ..., "
            f"'validation': ..., 'test': ...}}."
        )
    out = {}
    for split, limit in limits.items():
        table = raw[split]
        for column in (source_field, target_field):
            if column not in table.column_names:
                raise ValueError(
                    f"split {split!r} of {name!r} has no column {column!r}; its columns are "
                    f"{table.column_names}."
                )
        if limit is not None:
            table = table.select(range(min(limit, len(table))))
        sources, targets = table[source_field], table[target_field]
        out[split] = [(prefix + src, tgt) for src, tgt in zip(sources, targets, strict=True)]
    return Seq2SeqSplits(out["train"], out["validation"], out["test"])


_LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")
# Column pairs load_text_pairs recognises in local data when no fields are given.
_KNOWN_COLUMNS = (("document", "summary"), ("article", "highlights"), ("source", "target"))
_HUB_HELP = (
    "Without network access: use the offline `cpu` preset (`kdkit distill-t5 --preset cpu`, "
    "synthetic tasks and small models built locally), or pass a local directory saved with "
    "save_pretrained (`--teacher DIR --student DIR`) and local data files "
    "(load_text_pairs('json', data_files=...)). To use the Hub, run once with network access "
    "(files are cached) and set HF_HUB_OFFLINE=1 to reuse the cache offline."
)


def hub_offline() -> bool:
    """True when Hugging Face's offline mode is on (``HF_HUB_OFFLINE=1`` or
    ``TRANSFORMERS_OFFLINE=1``), read now, not only when ``huggingface_hub`` was imported."""
    import huggingface_hub.constants as hub_constants

    env = any(
        os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return env or bool(hub_constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub's endpoint opens within ``timeout`` seconds.

    The libraries would otherwise retry an unreachable Hub for ~30 s before giving up.
    With a proxy configured the direct probe says nothing, so it answers True.
    """
    import huggingface_hub.constants as hub_constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urllib.parse.urlparse(hub_constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_help(name: str, kind: str, err: BaseException | None = None) -> str:
    why = "offline mode is on (HF_HUB_OFFLINE=1)" if hub_offline() else "the Hub is unreachable"
    cause = f" ({type(err).__name__}: {str(err).splitlines()[0][:200]})" if err else ""
    return (
        f"Cannot load the {kind} {name!r}: it is not a local path, it is not in the local "
        f"cache, and {why}{cause}. {_HUB_HELP}"
    )


def _fail_fast_if_hub_unreachable(name: str, kind: str) -> None:
    """Raise at once when the Hub is neither allowed (offline mode handled by the caller
    through the cache) nor reachable."""
    if not hub_offline() and not hub_reachable():
        raise OSError(_hub_help(name, kind))


# ------------------------------------------------------------ batching for seq2seq models


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
    decoder inputs from ``labels`` (shifted right, ``-100`` → pad).
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
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


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


__all__ += ["TextPair", "TEXT_TASKS", "number_to_words", "Seq2SeqSplits", "make_text_tasks"]
__all__ += ["task_vocabulary_texts"]
__all__ += ["HUB_TEXT_DATASETS", "load_text_pairs", "hub_offline", "hub_reachable"]
__all__ += ["encode_pairs", "Seq2SeqCollator", "LengthGroupedBatchSampler"]


# --------------------------------------------------------- digits experiments (notebook 04)


def validation_split(
    X: torch.Tensor, y: torch.Tensor, fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Carve a stratified validation split out of training data: ``(X_fit, y_fit, X_val, y_val)``.

    Choose hyper-parameters (temperature, α, a class bias) on the validation part and report
    on the test set once. Shapes: X ``(N, F)``, y ``(N,)``. Same split for the same seed.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    fit, val = train_test_split(
        np.arange(X.shape[0]), test_size=fraction, random_state=seed, stratify=y.numpy()
    )
    fit, val = torch.from_numpy(fit), torch.from_numpy(val)
    return X[fit], y[fit], X[val], y[val]


def drop_class(X: torch.Tensor, y: torch.Tensor, cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every example except those of class ``cls``: ``(X[y != cls], y[y != cls])``.

    Hinton et al. (2015, §3) distil an MNIST student on a transfer set without a single 3.
    """
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    keep = y != cls
    if keep.all():
        raise ValueError(f"no example has label {cls}: nothing to drop.")
    return X[keep], y[keep]


def labelled_subset(y: torch.Tensor, fraction: float) -> torch.Tensor:
    """A random, class-stratified boolean mask ``(N,)`` that keeps ``fraction`` of the labels.

    Each class keeps ``round(fraction · n_class)`` labels, at least one. Draws from torch's
    global RNG, so :func:`kdkit.set_seed` makes it repeatable. Use ``torch.where(mask, y,
    -100)`` for a transfer set whose other rows the student sees without labels.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    mask = torch.zeros(y.shape[0], dtype=torch.bool)
    for cls in torch.unique(y).tolist():
        rows = torch.nonzero(y == cls).flatten()
        k = max(1, round(fraction * rows.numel()))
        mask[rows[torch.randperm(rows.numel())[:k]]] = True
    return mask


__all__ += ["validation_split", "drop_class", "labelled_subset"]  # notebook 04
