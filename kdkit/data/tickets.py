"""Support tickets: a seeded generator of short labelled texts over six overlapping intents,
and the word-level tokenizer the small Transformer of notebook 05 reads them with."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "TICKET_CLASSES",
    "TextCorpus",
    "make_ticket_corpus",
    "bayes_accuracy",
    "WordTokenizer",
    "EncodedText",
    "encode_corpus",
]



# Six intents of a web shop's support inbox. Related intents share words on purpose ("charged",
# "order", "login", "address", ...), and a ticket may raise two issues, so some tickets are
# genuinely ambiguous: a teacher's soft labels then say which intents resemble each other.
TICKET_CLASSES = ("billing", "refund", "shipping", "order change", "account", "app bug")

_PRODUCTS = (
    "headphones", "laptop", "jacket", "shoes", "keyboard", "monitor", "backpack", "blender",
    "camera", "charger", "lamp", "watch", "speaker", "printer", "sofa", "kettle", "tablet", "mug",
)
_WHEN = ("yesterday", "today", "last week", "on monday", "this morning", "twice now")
_OPENERS = ("hi", "hello", "hey there", "good morning", "urgent", "quick question", "hi team")
_CLOSERS = (
    "please help", "thanks", "thank you", "asap please", "what should i do", "any update",
    "this is frustrating", "kind regards",
)
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


def _check_probabilities(**probabilities: float) -> None:
    """A ``ValueError`` naming the first argument outside [0, 1]."""
    for name, p in probabilities.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}.")


def bayes_accuracy(two_issue_prob: float = 0.3, main_first_prob: float = 0.75) -> float:
    """The best expected accuracy any classifier can reach on :func:`make_ticket_corpus`'s
    tickets, if it recognises each clause's intent: a one-issue ticket is always right; for a
    two-issue ticket that reads intent ``x`` then ``y`` the best guess is whichever of
    ``P(label = x)·P(second = y | x)·main_first_prob`` and
    ``P(label = y)·P(second = x | y)·(1 − main_first_prob)`` is larger (labels uniform, the
    second intent uniform over the label's related ones). The ceiling of every model's
    accuracy on this task; ``1 − two_issue_prob·(1 − main_first_prob)`` ≤ it ≤ 1."""
    _check_probabilities(two_issue_prob=two_issue_prob, main_first_prob=main_first_prob)
    prior = 1 / len(TICKET_CLASSES)

    def weight(label: str, second: str, order_prob: float) -> float:  # P(label, second, order)
        related = _RELATED[label]
        return prior * order_prob / len(related) if second in related else 0.0

    best = sum(max(weight(x, y, main_first_prob), weight(y, x, 1 - main_first_prob))
               for x in TICKET_CLASSES for y in TICKET_CLASSES if x != y)
    return (1 - two_issue_prob) + two_issue_prob * best


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
    label_first: list[bool] | None = None  # the labelled issue is written first (always, for
    # one-issue tickets): the rule "predict the first issue" is right exactly there

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
    _check_probabilities(two_issue_prob=two_issue_prob, main_first_prob=main_first_prob,
                         ref_prob=ref_prob)
    rng = random.Random(seed)

    def clause(name: str) -> str:
        template = rng.choice(_CLAUSES[name])
        return template.format(product=rng.choice(_PRODUCTS), when=rng.choice(_WHEN))

    texts, labels, other_labels, label_first = [], [], [], []
    for i in range(num_examples):
        label = i % len(TICKET_CLASSES)
        other_label, first = -1, True
        parts = [clause(TICKET_CLASSES[label])]
        if rng.random() < two_issue_prob:
            other_label = TICKET_CLASSES.index(rng.choice(_RELATED[TICKET_CLASSES[label]]))
            other = clause(TICKET_CLASSES[other_label])
            if rng.random() >= main_first_prob:
                parts.insert(0, other)  # the labelled issue comes second
                first = False
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
        label_first.append(first)
    order = list(range(num_examples))
    rng.shuffle(order)
    return TextCorpus(
        [texts[i] for i in order],
        [labels[i] for i in order],
        TICKET_CLASSES,
        [other_labels[i] for i in order],
        [label_first[i] for i in order],
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
