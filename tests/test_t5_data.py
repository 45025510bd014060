"""Text-to-text data for the T5 part (kdkit.data) and its word-level tokenizer: generators,
splits, collator, length-grouped batches, the `datasets` adapter on a local file."""

from __future__ import annotations

import json
import re

import pytest
import torch

from kdkit.data.batching import LengthGroupedBatchSampler, Seq2SeqCollator, encode_pairs
from kdkit.data.loading import load_text_pairs
from kdkit.data.text_tasks import (
    build_word_tokenizer,
    make_text_tasks,
    number_to_words,
    task_vocabulary_texts,
)


@pytest.fixture(scope="module")
def splits():
    return make_text_tasks(("date", "number", "time"), num_train=600, num_val=60, num_test=90)


def _texts(pairs):
    return [text for pair in pairs for text in pair]


@pytest.fixture(scope="module")
def tokenizer(splits):
    return build_word_tokenizer(_texts(splits.train) + task_vocabulary_texts())


# --------------------------------------------------------------------------- tasks


def test_tasks_are_deterministic_and_seed_dependent():
    a = make_text_tasks(("date", "number"), 50, 10, 10, seed=3)
    b = make_text_tasks(("date", "number"), 50, 10, 10, seed=3)
    c = make_text_tasks(("date", "number"), 50, 10, 10, seed=4)
    assert (a.train, a.validation, a.test) == (b.train, b.validation, b.test)
    assert a.train != c.train


def test_splits_have_the_requested_sizes_and_are_disjoint_by_value(splits):
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (600, 60, 90)
    # Every task's target names its underlying value uniquely (a date, a number, a time), so
    # disjoint targets mean no test value was seen in training in any surface form.
    targets = [{t for _, t in split} for split in splits]
    assert len(targets[0]) == 600 and len(targets[1]) == 60 and len(targets[2]) == 90
    assert not targets[0] & targets[1] and not targets[0] & targets[2]
    assert not targets[1] & targets[2]
    prefixes = {s.split(":")[0] for s, _ in splits.train}
    assert prefixes == {"date", "number", "time"}


def test_test_split_does_not_change_with_the_training_size():
    small = make_text_tasks(("date", "number"), 20, 5, 30, seed=1)
    large = make_text_tasks(("date", "number"), 200, 5, 30, seed=1)
    assert sorted(small.test) == sorted(large.test)


def test_targets_are_correct():
    assert number_to_words(0) == "zero"
    assert number_to_words(347) == "three hundred forty seven"
    assert number_to_words(9019) == "nine thousand nineteen"
    assert number_to_words(1000) == "one thousand"
    months = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]
    pairs = make_text_tasks(("date", "time", "number"), 300, 0, 0, seed=2).train
    for source, target in pairs:
        task, text = source.split(": ", 1)
        if task == "date":
            year, month, day = (int(x) for x in target.split("-"))
            assert str(year) in text and (months[month - 1][:3] in text or f"{month:02d}/" in text)
            assert re.search(rf"(?<!\d)0?{day}(?!\d)", text), (source, target)
        elif task == "time":
            assert re.fullmatch(r"\d\d:\d\d", target)
            if ":" in text:  # 7:05 pm
                h, m = re.match(r"(\d+):(\d+) (am|pm)", text).groups()[:2]
                assert int(m) == int(target[3:]) and int(h) % 12 == int(target[:2]) % 12
        else:
            assert number_to_words(int(text)) == target


def test_task_errors():
    with pytest.raises(ValueError, match="tasks"):
        make_text_tasks(("dates",))
    with pytest.raises(ValueError, match="only 1440 distinct values"):
        make_text_tasks(("time",), num_train=2000, num_val=0, num_test=0)
    with pytest.raises(ValueError, match="num_val"):
        make_text_tasks(("date",), 10, -1, 0)


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_round_trip(splits, tokenizer):
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "</s>", "<unk>"]
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    for text in [t for pair in splits.test for t in pair]:
        ids = tokenizer(text)["input_ids"]
        assert ids[-1] == tokenizer.eos_token_id
        assert tokenizer.unk_token_id not in ids, text
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    # digits are single tokens, so the vocabulary stays tiny and every number is covered
    assert tokenizer.tokenize("1999") == ["▁", "1", "9", "9", "9"]
    assert len(tokenizer) < 120


def test_tokenizer_is_deterministic_and_maps_unknown_words(splits, tokenizer):
    again = build_word_tokenizer(_texts(splits.train) + task_vocabulary_texts())
    assert again.get_vocab() == tokenizer.get_vocab()
    # from training texts alone a rare word can be missing: the inventory covers every split
    assert len(build_word_tokenizer(_texts(splits.train[:20]))) < len(again)
    ids = tokenizer("date: Smarch 3, 1999")["input_ids"]
    assert ids[1] == tokenizer.convert_tokens_to_ids(":") and tokenizer.unk_token_id in ids


# --------------------------------------------------------------------------- batching


def test_collator_pads_dynamically_with_minus_100_labels(splits, tokenizer):
    features = encode_pairs(tokenizer, splits.train[:5], max_source_len=32, max_target_len=16)
    batch = Seq2SeqCollator(pad_token_id=tokenizer.pad_token_id)(features)
    Ls = max(len(f["input_ids"]) for f in features)
    Lt = max(len(f["labels"]) for f in features)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (5, Ls)
    assert batch["labels"].shape == (5, Lt)
    for b, f in enumerate(features):
        n, m = len(f["input_ids"]), len(f["labels"])
        assert batch["input_ids"][b, :n].tolist() == f["input_ids"]
        assert (batch["input_ids"][b, n:] == tokenizer.pad_token_id).all()
        assert batch["attention_mask"][b].tolist() == [1] * n + [0] * (Ls - n)
        assert batch["labels"][b, :m].tolist() == f["labels"]
        assert (batch["labels"][b, m:] == -100).all()
        assert f["labels"][-1] == tokenizer.eos_token_id


def test_encode_pairs_truncates_but_keeps_end_of_sequence(splits, tokenizer):
    features = encode_pairs(tokenizer, splits.train[:20], max_source_len=5, max_target_len=3)
    for f in features:
        assert len(f["input_ids"]) <= 5 and len(f["labels"]) <= 3
        assert f["input_ids"][-1] == f["labels"][-1] == tokenizer.eos_token_id


def test_length_grouped_sampler_covers_every_index_once_and_groups_lengths():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 200, (1003,), generator=gen).tolist()
    sampler = LengthGroupedBatchSampler(lengths, batch_size=16, seed=5, mega_batch_factor=8)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1003))
    assert all(1 <= len(b) <= 16 for b in batches)
    assert sampler.batches(0) == batches  # deterministic: a resumed run sees the same batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    assert sorted(i for b in sampler for i in b) == list(range(1003))

    def padding(bs):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in bs)

    plain = LengthGroupedBatchSampler(lengths, 16, seed=5, group_by_length=False)
    assert sorted(i for b in plain for i in b) == list(range(1003))
    assert padding(batches) < 0.2 * padding(list(plain))


def test_sampler_errors():
    with pytest.raises(ValueError, match="batch_size"):
        LengthGroupedBatchSampler([1, 2], batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        LengthGroupedBatchSampler([], batch_size=2)


# --------------------------------------------------------------------------- datasets adapter


def test_load_text_pairs_reads_local_json_through_datasets(tmp_path):
    files = {}
    for split, n in (("train", 5), ("validation", 2), ("test", 3)):
        path = tmp_path / f"{split}.jsonl"
        rows = [{"document": f"{split} document {i}", "summary": f"summary {i}", "id": i}
                for i in range(n)]
        path.write_text("\n".join(json.dumps(r) for r in rows))
        files[split] = str(path)
    splits = load_text_pairs(
        "json", data_files=files, source_field="document", target_field="summary",
        prefix="summarize: ", num_train=4,
    )
    assert len(splits.train) == 4 and len(splits.validation) == 2 and len(splits.test) == 3
    assert splits.train[1] == ("summarize: train document 1", "summary 1")
    with pytest.raises(ValueError, match="no column 'text'"):
        load_text_pairs("json", data_files=files, source_field="text", target_field="summary")
    with pytest.raises(ValueError, match="missing"):
        load_text_pairs("json", data_files={"train": files["train"]},
                        source_field="document", target_field="summary")


def test_hub_dataset_offline_fails_fast_with_what_to_do(monkeypatch, network_calls):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match="cpu. preset") as info:
        load_text_pairs("made-up-org/no-such-dataset-kdkit", source_field="a", target_field="b")
    assert not network_calls  # no retries against an unreachable Hub: it fails at once
    assert "HF_HUB_OFFLINE" in str(info.value)
