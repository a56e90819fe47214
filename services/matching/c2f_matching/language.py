"""Language-neutral text vectors: each language's mean vector is removed before comparing.

Multilingual encoders place texts of one language close together whatever they say,
so a Bulgarian need finds Bulgarian offers first. Removing each language's mean
vector (Libovický, Rosa and Fraser 2020, "On the Language Neutrality of Pre-trained
Multilingual Representations") takes the language out and leaves the meaning.

The means come from a parallel reference corpus (`data/language_reference.json`:
the same 330 sentences, on every kind of topic, in each language), so they carry
language and not topic. Serbian counts twice, once per script. They are computed
once per model and shipped (`data/language_centres.npz`); rebuild them with
`python -m c2f_matching.language` after changing the corpus or the model.

Which language a text is in comes from what the member declared, checked against
the text's script; where the declaration does not fit (or for a search query), the
script, a few letters only one language uses, and the nearest language mean decide.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from c2f_matching.embedder import Embedder, Role, Vectors

KEYS = ("en", "es", "it", "bg", "sr-Latn", "sr-Cyrl", "el")
SCRIPT_OF = {"en": "Latn", "es": "Latn", "it": "Latn", "bg": "Cyrl", "sr-Latn": "Latn", "sr-Cyrl": "Cyrl"}
SCRIPT_OF["el"] = "Grek"
CENTRES_FILE = "data/language_centres.npz"
REFERENCE_FILE = "data/language_reference.json"

# Letters that only one of the partnership's languages of a script uses.
ONLY_IN = {
    "sr-Cyrl": set("ђјљњћџЂЈЉЊЋЏ"),
    "bg": set("ъщюяйЪЩЮЯЙ"),
    "sr-Latn": set("čćđČĆĐ"),
    "es": set("ñÑ¿¡"),
}


def script(text: str) -> str | None:
    """The script most of the text's letters are in: Latn, Cyrl, Grek (None: no letters)."""
    counts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            counts["Cyrl" if "CYRILLIC" in name else "Grek" if "GREEK" in name else "Latn"] += 1
    return counts.most_common(1)[0][0] if counts else None


def key_for(text: str, declared: str | None) -> str | None:
    """The language key of `text` when the declaration fits its script (None: detect it)."""
    found = script(text)
    if declared == "sr" or (declared or "").startswith("sr-"):
        return "sr-Cyrl" if found == "Cyrl" else "sr-Latn"
    if declared in SCRIPT_OF and (found is None or SCRIPT_OF[declared] == found):
        return declared
    return None


_LATIN_TO_SERBIAN_CYRILLIC = {
    **dict(zip("abvgdđežzijklmnoprstćufhcčš", "абвгдђежзијклмнопрстћуфхцчш", strict=True)),
    **dict(zip("ABVGDĐEŽZIJKLMNOPRSTĆUFHCČŠ", "АБВГДЂЕЖЗИЈКЛМНОПРСТЋУФХЦЧШ", strict=True)),
}
_DIGRAPHS = {
    "dž": "џ",
    "Dž": "Џ",
    "DŽ": "Џ",
    "lj": "љ",
    "Lj": "Љ",
    "LJ": "Љ",
    "nj": "њ",
    "Nj": "Њ",
    "NJ": "Њ",
}


def serbian_to_cyrillic(text: str) -> str:
    """Serbian Latin script to Cyrillic (the two map one to one, digraphs aside)."""
    for latin, cyrillic in _DIGRAPHS.items():
        text = text.replace(latin, cyrillic)
    return "".join(_LATIN_TO_SERBIAN_CYRILLIC.get(c, c) for c in text)


class LanguageCentres:
    """Each language's mean query and passage vector of one model."""

    def __init__(self, model_id: str, centres: dict[str, Vectors]) -> None:
        self.model_id = model_id
        self.query, self.passage = centres["query"], centres["passage"]

    @classmethod
    def shipped(cls) -> LanguageCentres:
        with resources.files("c2f_matching").joinpath(CENTRES_FILE).open("rb") as f:
            data = np.load(f)
            return cls(str(data["model_id"]), {"query": data["query"], "passage": data["passage"]})

    def _of(self, role: Role) -> Vectors:
        return self.query if role == "query" else self.passage

    def detect(self, text: str, vector: Vectors, role: Role) -> str:
        """The language of a text: its script, letters only one language uses, then the
        nearest language mean among those of its script."""
        found = script(text) or "Latn"
        candidates = [k for k in KEYS if SCRIPT_OF[k] == found]
        marked = [k for k in candidates if k in ONLY_IN and ONLY_IN[k] & set(text)]
        if len(marked) == 1:
            return marked[0]
        centres = self._of(role)
        scores = [float(vector @ centres[KEYS.index(k)]) for k in candidates]
        return candidates[int(np.argmax(scores))]

    def neutral(
        self, texts: Sequence[str], vectors: Vectors, role: Role, declared: Sequence[str | None]
    ) -> Vectors:
        """`vectors` (one row per text, L2-normalised) with their language's mean removed,
        L2-normalised again."""
        if len(texts) == 0:
            return vectors
        centres = self._of(role)
        keys = [
            key_for(text, language) or self.detect(text, vector, role)
            for text, vector, language in zip(texts, vectors, declared, strict=True)
        ]
        shifted = vectors - centres[[KEYS.index(k) for k in keys]]
        norms = np.linalg.norm(shifted, axis=1, keepdims=True)
        result: Vectors = (shifted / np.maximum(norms, 1e-9)).astype(np.float32)
        return result


def reference_sentences() -> dict[str, list[str]]:
    data = json.loads(resources.files("c2f_matching").joinpath(REFERENCE_FILE).read_text("utf-8"))
    sentences: dict[str, list[str]] = data["sentences"]
    return sentences


def build_centres(model: Embedder, progress: bool = True) -> dict[str, Vectors]:
    """Each language's mean query and passage vector over the reference corpus."""
    from rich.progress import track

    sentences = reference_sentences()
    centres: dict[str, list[Vectors]] = {"query": [], "passage": []}
    steps = [(role, key) for role in ("query", "passage") for key in KEYS]
    for role, key in track(steps, description="language means", disable=not progress):
        vectors = model.embed(sentences[key], role)  # type: ignore[arg-type]
        centres[role].append(vectors.mean(axis=0))
    return {role: np.stack(rows).astype(np.float32) for role, rows in centres.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m c2f_matching.language",
        description="Compute each language's mean vector from the reference corpus and write "
        f"them to {CENTRES_FILE} (the matching service loads them at start).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(str(resources.files("c2f_matching").joinpath(CENTRES_FILE))),
        help="where to write (default: the package's data folder)",
    )
    args = parser.parse_args()
    from c2f_matching.embedder import E5Embedder

    model = E5Embedder()
    centres = build_centres(model)
    np.savez(
        args.out,
        model_id=np.array(model.model_id),
        keys=np.array(KEYS),
        query=centres["query"],
        passage=centres["passage"],
    )
    print(f"wrote {args.out}: {len(KEYS)} languages × query/passage, model {model.model_id}")


if __name__ == "__main__":
    main()
