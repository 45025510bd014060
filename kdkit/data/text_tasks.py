"""Synthetic text-to-text tasks, T5 style (notebook 06), and the word-level tokenizer built
offline for them: nothing here downloads anything."""

from __future__ import annotations

import calendar
import random
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from kdkit.config import SYNTHETIC_TASKS
from kdkit.data.batching import Seq2SeqSplits, TextPair

if TYPE_CHECKING:  # transformers is imported lazily: it takes seconds to import
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "TEXT_TASKS",
    "number_to_words",
    "make_text_tasks",
    "task_vocabulary_texts",
    "T5_SPECIAL_TOKENS",
    "build_word_tokenizer",
]



# A source is "<task prefix>: <input>", as in T5 (Raffel et al. 2020, §2.4): one model, several
# tasks, the prefix says which. Every task maps an underlying value (a date, a number, a time)
# to a source in one of several surface forms and to one canonical target.
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}

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


# name -> (generator of (key, source, target), number of distinct keys). The names are
# kdkit.config.SYNTHETIC_TASKS (the one list, which configs validate against).
_TASKS = {
    "date": (_date_example, 200 * 365),
    "number": (_number_example, 10_000),
    "time": (_time_example, 24 * 60),
}
TEXT_TASKS = SYNTHETIC_TASKS
if tuple(_TASKS) != TEXT_TASKS:  # a task added here must be added to the config's list
    raise ImportError(f"kdkit.config.SYNTHETIC_TASKS {TEXT_TASKS} != generators {tuple(_TASKS)}")


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


# ------------------------------------------------ a word-level T5 tokenizer, built offline

T5_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2, as in T5's own vocabulary


def _word_pre_tokenizer(split_digits: bool):
    from tokenizers import pre_tokenizers

    # Metaspace marks word starts with "▁" so that decoding restores the spaces exactly
    # ("1999-03-03" and "March 3, 1999" round-trip); Digits splits numbers into single digits,
    # so ten digit tokens cover every number.
    steps = [pre_tokenizers.Metaspace(prepend_scheme="always"), pre_tokenizers.Punctuation()]
    if split_digits:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    return pre_tokenizers.Sequence(steps)


def build_word_tokenizer(
    texts: Iterable[str], min_freq: int = 1, *, split_digits: bool = True
) -> PreTrainedTokenizerBase:
    """A word-level T5 tokenizer built offline from ``texts`` (no download, no training run).

    Words, punctuation and single digits become tokens; ids 0, 1, 2 are ``<pad>``, ``</s>``,
    ``<unk>`` (T5's), then every token seen ``min_freq`` times, most frequent first (ties
    alphabetically: the same texts give the same ids). Encoding appends ``</s>``; decoding
    restores the original spacing. A vocabulary of tens of tokens instead of T5's 32k is what
    makes a T5 trainable on a CPU in minutes. Save it with ``save_pretrained`` next to the model.
    ``split_digits=False`` keeps digits inside words (G2P's phonemes ``EH1``, ``AH0`` stay one
    token each).
    """
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}.")
    pre = _word_pre_tokenizer(split_digits)
    counts = Counter(token for text in texts for token, _ in pre.pre_tokenize_str(text))
    words = sorted(
        (w for w, n in counts.items() if n >= min_freq and w not in T5_SPECIAL_TOKENS),
        key=lambda w: (-counts[w], w),
    )
    vocab = {token: i for i, token in enumerate([*T5_SPECIAL_TOKENS, *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    backend.decoder = decoders.Metaspace(prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
