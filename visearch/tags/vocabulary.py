"""The tag vocabulary: canonical tags from a catalog's attribute columns, and the surface
forms (Russian, English, misspelt) that mean each one, learned from the same catalog.

Sellers fill structured attributes with canonical English values ("phone_case", "red",
"stripes") and write titles in whatever language and spelling they like ("чехол для
телефона красный в полоску"). Rather than a hand-written dictionary, which would only
know the words its author thought of, the vocabulary learns the aliases from the
catalog itself: a title n-gram is an alias of attribute value ``v`` when nearly all
products whose title holds it (:data:`ALIAS_MIN_SHARE`) have ``v``, and enough of them
do (:data:`ALIAS_MIN_SUPPORT`) for the share to mean something.

>>> vocab = TagVocabulary.from_catalog(rows)  # doctest: +SKIP
>>> vocab.lookup("Красный")  # doctest: +SKIP
Tag(text='red', facet='colour')
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from visearch.errors import DatasetError
from visearch.files import write_text_atomic

__all__ = [
    "Tag",
    "TagVocabulary",
    "FACETS",
    "ATTRIBUTE_FACETS",
    "ALIAS_MIN_SHARE",
    "ALIAS_MIN_SUPPORT",
    "normalise",
    "tokens",
    "ngrams",
    "attribute_tags",
]

Facet = Literal["category", "colour", "pattern", "material", "brand", "other"]
#: attribute columns a catalog may have, each a facet of its canonical tags
ATTRIBUTE_FACETS: tuple[str, ...] = ("category", "colour", "pattern", "material", "brand")
FACETS: tuple[str, ...] = (*ATTRIBUTE_FACETS, "other")

#: an n-gram is an alias of a value when at least this share of the products whose title holds it have that value
ALIAS_MIN_SHARE = 0.9
#: ... and at least this many products hold it (below, a share of 1.0 is one model's chance)
ALIAS_MIN_SUPPORT = 3
#: a bigram holding a word that is itself an alias of the same tag is kept when it holds this share of that word's
#: occurrences (a fixed phrase: "в полоску", "часы настенные"), not when the neighbour is chance ("altai хит")
PHRASE_MIN_SHARE = 0.8
#: longest alias in words; longer tags are read by segmenting them into aliases
MAX_ALIAS_WORDS = 3

VOCABULARY_FORMAT = "visearch-tag-vocabulary/1"

# a hyphen stays inside a word ("тёмно-синий" is one colour, not "тёмно" + "синий")
_NOT_WORD = re.compile(r"[^\w-]+|_|(?<!\w)-|-(?!\w)")
_SPACES = re.compile(r"\s+")
_HYPHENS = re.compile(r"-{2,}")
_CYRILLIC = re.compile(r"[а-я]")
# inflectional endings, longest first: "красная"/"красное"/"красные" share the stem of "красный"
_RU_ENDINGS = tuple(sorted((
    "ая", "яя", "ое", "ее", "ые", "ие", "ый", "ий", "ой", "ую", "юю", "ого", "его", "ому", "ему", "ыми", "ими",
    "ых", "их", "ом", "ем", "ам", "ям", "ах", "ях", "ей", "ы", "и", "а", "я", "о", "е", "у", "ю",
), key=len, reverse=True))


@dataclass(frozen=True, order=True)
class Tag:
    """One canonical tag: lowercase ``text`` within a ``facet`` (an attribute column, or "other")."""

    text: str
    facet: str

    def to_dict(self) -> dict[str, str]:
        return {"text": self.text, "facet": self.facet}


def normalise(text: str) -> str:
    """The comparable form of any surface text: NFKC, lowercase, "ё" → "е", punctuation and
    symbols (emoji included) gone, single spaces. Hyphens inside words stay."""
    text = unicodedata.normalize("NFKC", text or "").casefold().replace("ё", "е")
    # drop symbols (emoji, ©) and marks outright; punctuation becomes a word break
    text = "".join(" " if unicodedata.category(c)[0] in "SP" and c != "-" else c
                   for c in text if unicodedata.category(c) not in ("Mn", "Cf", "Cc") or c in "\t\n")
    return _SPACES.sub(" ", _NOT_WORD.sub(" ", _HYPHENS.sub("-", text))).strip()


def tokens(text: str) -> list[str]:
    """The words of ``text`` after :func:`normalise`."""
    norm = normalise(text)
    return norm.split(" ") if norm else []


def ngrams(words: list[str], n_max: int = 2) -> list[str]:
    """Unigrams up to ``n_max``-grams of ``words``, in order, repeats kept."""
    return [" ".join(words[i:i + n]) for n in range(1, n_max + 1) for i in range(len(words) - n + 1)]


def stem(word: str) -> str:
    """A crude stem for matching inflected forms: a Russian ending or an English plural "s" off.

    Only words of 5+ letters are cut, and the stem keeps 4+ letters, so short words stay whole.
    """
    if len(word) < 5 or " " in word:
        return word
    if _CYRILLIC.search(word):
        for end in _RU_ENDINGS:
            if word.endswith(end) and len(word) - len(end) >= 4:
                return word[: -len(end)]
        return word
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@lru_cache(maxsize=1)
def _stop_words() -> tuple[frozenset[str], frozenset[str]]:
    """Single words of the stop list, and the grammar words among them.

    None is learned as an alias by itself ("для" may sit only in "чехол для телефона");
    a grammar word may be part of a learned phrase ("в полоску"), a marketing word not ("top часы").
    """
    from visearch.tags.stopwords import FUNCTION_WORDS, STOP_PHRASES

    single = frozenset(n for n in (normalise(p) for p in STOP_PHRASES) if n and " " not in n)
    return single, frozenset(normalise(w) for w in FUNCTION_WORDS)


def _canonical(value: Any) -> str:
    return normalise(str(value).replace("_", " ")) if value is not None else ""


def attribute_tags(row: Mapping[str, Any], facets: Sequence[str] = ATTRIBUTE_FACETS) -> list[Tag]:
    """The canonical tags of a product's attribute values (its ground truth), facet by facet."""
    return [Tag(_canonical(row[f]), f) for f in facets if row.get(f) not in (None, "")]


@dataclass(frozen=True)
class Alias:
    """Why a surface form means a tag: how many products hold it and what share of them have the tag."""

    tag: Tag
    support: int
    share: float

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag.text, "facet": self.tag.facet, "support": self.support, "share": round(self.share, 4)}


class TagVocabulary:
    """Canonical tags and the alias map from surface forms to them.

    Every canonical tag is its own alias; learned aliases come from :meth:`from_catalog`.
    Keys of the alias map are :func:`normalise`-d.
    """

    def __init__(self, tags: Iterable[Tag], aliases: Mapping[str, Alias] | None = None,
                 meta: Mapping[str, Any] | None = None) -> None:
        self.tags: tuple[Tag, ...] = tuple(sorted(set(tags), key=lambda t: (FACETS.index(t.facet)
                                                                            if t.facet in FACETS else 99, t.text)))
        self.aliases: dict[str, Alias] = dict(aliases or {})
        for tag in self.tags:  # the canonical form always resolves, to itself
            self.aliases.setdefault(tag.text, Alias(tag, 0, 1.0))
        self.meta: dict[str, Any] = dict(meta or {})
        self._index()

    def _index(self) -> None:
        self._tagset = frozenset(self.tags)
        self._stems: dict[str, Tag | None] = {}
        for key, alias in self.aliases.items():
            if " " in key:
                continue
            s = stem(key)
            prior = self._stems.get(s, alias.tag)
            self._stems[s] = alias.tag if prior == alias.tag else None  # None: the stem is ambiguous
        self.words: frozenset[str] = frozenset(w for key in self.aliases for w in key.split(" "))

    def __len__(self) -> int:
        return len(self.tags)

    def __contains__(self, tag: object) -> bool:
        return tag in self._tagset

    def facet_tags(self, facet: str) -> list[Tag]:
        """The canonical tags of one facet."""
        return [t for t in self.tags if t.facet == facet]

    # ------------------------------------------------------------------ learning

    @classmethod
    def from_catalog(
        cls,
        rows: Iterable[Mapping[str, Any]],
        *,
        text_columns: tuple[str, ...] = ("title",),
        min_share: float = ALIAS_MIN_SHARE,
        min_support: int = ALIAS_MIN_SUPPORT,
    ) -> TagVocabulary:
        """Learn the vocabulary from catalog rows (dicts with ``title`` and attribute columns).

        Canonical tags are the distinct values of the attribute columns present
        (:data:`ATTRIBUTE_FACETS`; "phone_case" → "phone case"). A title unigram or bigram
        becomes an alias of value ``v`` of a facet when at least ``min_share`` of the
        products whose title holds it have ``v`` and at least ``min_support`` products hold
        it. When it qualifies in several facets (all products holding a rare word may be
        one model, sharing category, brand and material), the facet where it covers the
        largest share of the value's products wins: a word that names a value is in most
        of that value's titles. A bigram is kept only when it qualifies in one facet and
        one of its words is no alias by itself ("в полоску", "часы настенные"); two alias
        words side by side ("рюкзак бирюзовый") are read word by word.
        """
        rows = list(rows)
        facets = [f for f in ATTRIBUTE_FACETS if any(r.get(f) not in (None, "") for r in rows)]
        values: dict[str, list[str]] = {f: [_canonical(r.get(f)) for r in rows] for f in facets}
        tags = {Tag(v, f) for f in facets for v in values[f] if v}
        value_count = {f: Counter(v for v in values[f] if v) for f in facets}

        holders: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            words = [w for c in text_columns for w in tokens(str(row.get(c) or ""))]
            for gram in set(ngrams(words, 2)):
                holders[gram].append(i)

        def qualify(gram: str, idx: list[int]) -> list[tuple[float, Alias]]:
            found = []
            for f in facets:
                counts = Counter(values[f][i] for i in idx if values[f][i])
                if not counts:
                    continue
                value, n = counts.most_common(1)[0]
                share = n / len(idx)
                if share >= min_share:
                    found.append((n / value_count[f][value], Alias(Tag(value, f), len(idx), share)))
            return found

        stop, grammar = _stop_words()
        learned: dict[str, Alias] = {}
        bigrams: dict[str, list[tuple[float, Alias]]] = {}
        for gram, idx in holders.items():
            if len(idx) < min_support or gram.isdigit() or len(gram) < 3 or gram in stop:
                continue
            found = qualify(gram, idx)
            if not found:
                continue
            if " " in gram:
                bigrams[gram] = found
            else:
                learned[gram] = max(found, key=lambda x: (x[0], x[1].share))[1]
        canonical = {t.text: t for t in tags}
        for gram, found in bigrams.items():
            if len(found) != 1:
                continue
            alias = found[0][1]
            words = gram.split(" ")
            if any(w in stop and w not in grammar for w in words):
                continue  # an ad or praise word beside a product word: chance, not a phrase
            word_tags = [learned[w].tag if w in learned else canonical.get(w) for w in words]
            if all(t is not None for t in word_tags) and len(set(word_tags)) > 1:
                continue  # two different tags side by side ("рюкзак бирюзовый"): read word by word
            # a bigram whose word already means its tag is kept only as a fixed phrase: it
            # holds most of that word's occurrences ("в полоску"), not a chance neighbour ("altai хит")
            same = [w for w, t in zip(words, word_tags, strict=True) if t == alias.tag]
            if same and any(alias.support < PHRASE_MIN_SHARE * len(holders[w]) for w in same):
                continue
            learned[gram] = alias
        meta = {"products": len(rows), "min_share": min_share, "min_support": min_support,
                "text_columns": list(text_columns)}
        # the canonical form wins over a learned alias that happens to share its spelling
        aliases = {k: a for k, a in learned.items() if k not in canonical}
        return cls(tags, aliases, meta)

    # ------------------------------------------------------------------ lookup

    def lookup(self, surface: str) -> Tag | None:
        """The canonical tag ``surface`` means, or ``None``.

        Tried in order: the alias map; the stem of a single word ("красная" → the tag of
        "красный"); and, for several words, the one tag all their resolvable parts agree
        on ("часы настенные", "в полоску").
        """
        norm = normalise(surface)
        if not norm:
            return None
        if norm in self.aliases:
            return self.aliases[norm].tag
        found, _rest = self.segment(norm)
        distinct = set(found)
        return found[0] if len(distinct) == 1 else None

    def lookup_word(self, word: str) -> Tag | None:
        """One normalised word's tag: exact alias (hyphen dropped if need be), else an unambiguous stem match."""
        alias = self.aliases.get(word)
        if alias is None and "-" in word:  # "t-shirt" for "tshirt"
            alias = self.aliases.get(word.replace("-", "")) or self.aliases.get(word.replace("-", " "))
        if alias is not None:
            return alias.tag
        return self._stems.get(stem(word))

    def segment(self, norm: str) -> tuple[list[Tag], list[str]]:
        """Read a normalised text as aliases, longest first, left to right.

        Returns the tags found and the spans (runs of words) no alias covers.
        """
        words = norm.split(" ") if norm else []
        found: list[Tag] = []
        rest: list[str] = []
        run: list[str] = []
        i = 0
        while i < len(words):
            for n in range(min(MAX_ALIAS_WORDS, len(words) - i), 0, -1):
                gram = " ".join(words[i:i + n])
                tag = self.aliases[gram].tag if gram in self.aliases else (self.lookup_word(gram) if n == 1 else None)
                if tag is not None:
                    if run:
                        rest.append(" ".join(run))
                        run = []
                    found.append(tag)
                    i += n
                    break
            else:
                run.append(words[i])
                i += 1
        if run:
            rest.append(" ".join(run))
        return found, rest

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": VOCABULARY_FORMAT,
            "meta": self.meta,
            "tags": [t.to_dict() for t in self.tags],
            "aliases": {k: a.to_dict() for k, a in sorted(self.aliases.items())
                        if not (a.support == 0 and k == a.tag.text)},
        }

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON (Cyrillic readable), atomically."""
        return write_text_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TagVocabulary:
        """Read a vocabulary :meth:`save` wrote.

        Raises:
            DatasetError: the file is missing, not JSON, or not a tag vocabulary.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DatasetError(f"{path}: no such tag vocabulary; make one with: visearch tags generate --data DIR") from None
        except (OSError, ValueError) as e:
            raise DatasetError(f"{path}: not a readable tag vocabulary ({e})") from None
        if not isinstance(data, dict) or data.get("format") != VOCABULARY_FORMAT:
            raise DatasetError(f"{path}: not a tag vocabulary (format {VOCABULARY_FORMAT!r} expected)")
        try:
            tags = [Tag(str(t["text"]), str(t["facet"])) for t in data["tags"]]
            aliases = {str(k): Alias(Tag(str(a["tag"]), str(a["facet"])), int(a["support"]), float(a["share"]))
                       for k, a in data["aliases"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DatasetError(f"{path}: malformed tag vocabulary ({type(e).__name__}: {e})") from None
        return cls(tags, aliases, data.get("meta") or {})
