"""Real text-to-text datasets through ``datasets.load_dataset``: a Hub name (downloaded on
first use, failing fast with advice when the Hub cannot be reached) or local files."""

from __future__ import annotations

from pathlib import Path

from kdkit.data.batching import Seq2SeqSplits
from kdkit.hub import hub_help, require_hub

__all__ = ["HUB_TEXT_DATASETS", "load_text_pairs"]




# `datasets` names -> (source field, target field, task prefix) for load_text_pairs.
HUB_TEXT_DATASETS = {
    "EdinburghNLP/xsum": ("document", "summary", "summarize: "),
    "xsum": ("document", "summary", "summarize: "),
    "abisee/cnn_dailymail": ("article", "highlights", "summarize: "),
    "cnn_dailymail": ("article", "highlights", "summarize: "),
}


def _read(name: str, config_name: str | None, data_files, local: bool):
    """``datasets.load_dataset``, with the Hub's Parquet export for a script dataset and the
    offline help for a Hub name that cannot be had."""
    import datasets  # lazily: the offline path of the course never needs it

    try:
        try:
            return datasets.load_dataset(name, config_name, data_files=data_files)
        except RuntimeError as err:
            # datasets >= 4 no longer runs loading scripts; the Hub keeps an automatic Parquet
            # export of most script datasets on the refs/convert/parquet branch.
            if local or "scripts are no longer supported" not in str(err):
                raise
            return datasets.load_dataset(
                name, config_name or "default", revision="refs/convert/parquet"
            )
    except (OSError, ConnectionError, FileNotFoundError, ValueError) as err:
        if local:
            raise
        raise OSError(hub_help(name, "dataset", err)) from err


def _known_columns(name: str, columns: list[str]) -> tuple[str, str]:
    """The first of :data:`_KNOWN_COLUMNS` that ``columns`` hold, as (source, target)."""
    known = [pair for pair in _KNOWN_COLUMNS if set(pair) <= set(columns)]
    if not known:
        raise ValueError(
            f"{name!r} has columns {columns}; none of the known input/output pairs "
            f"{_KNOWN_COLUMNS}. Pass source_field= and target_field=."
        )
    return known[0]


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
    fails within seconds with what to do instead (see :func:`kdkit.hub.hub_offline`).
    """
    src_default, tgt_default, prefix_default = HUB_TEXT_DATASETS.get(name, (None, None, ""))
    source_field = source_field or src_default
    target_field = target_field or tgt_default
    prefix = prefix_default if prefix is None else prefix
    local = data_files is not None or name in _LOCAL_BUILDERS or Path(name).exists()
    if not local and (source_field is None or target_field is None):
        raise ValueError(
            f"{name!r} is not in HUB_TEXT_DATASETS {sorted(HUB_TEXT_DATASETS)}: call "
            f"kdkit.data.loading.load_text_pairs with source_field= and target_field= (the columns "
            f"holding input and output text), or add it to HUB_TEXT_DATASETS."
        )
    if not local:
        require_hub(name, "dataset")
    raw = _read(name, config_name, data_files, local)
    if source_field is None or target_field is None:  # local data: well-known column names
        source_field, target_field = _known_columns(name, next(iter(raw.values())).column_names)
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
