"""Raw tags (from any generator) to canonical tags, one step at a time, each step counted.

Whatever makes the raw tags, an n-gram extractor or a language model, they come in
the seller's spelling and language and with the seller's ad words. The steps, in order:

1. **normalise**: NFKC, lowercase, "ё" → "е", punctuation and emoji gone, single spaces;
2. **stopwords**: ad phrases, praise and card boilerplate removed (:mod:`~visearch.tags.stopwords`),
   grammar words trimmed from a tag's edges; a tag that was nothing else is dropped;
3. **typos**: words the vocabulary does not know are corrected to the one vocabulary word
   within Damerau-Levenshtein reach (1 edit for 4-7 letters, ``fuzzy_max_edits`` longer);
4. **aliases**: the text is read as the vocabulary's aliases, so Russian, English and mixed
   forms become the same canonical tag; what no alias covers stays as it is;
5. **merge**: one tag once per product, whichever surfaces it came from;
6. **rare**: a tag outside the vocabulary (facet "other") is kept only when at least
   ``min_count`` products have it; a one-off is noise, not a tag.

>>> tags, report = clean_tags([["КРАСНЫЙ!!!", "red", "хит продаж"]], vocab, settings.tags)  # doctest: +SKIP
>>> tags[0], report.summary()  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from visearch.config import TagSettings
from visearch.tags.stopwords import FUNCTION_WORDS, STOP_PHRASES
from visearch.tags.vocabulary import ATTRIBUTE_FACETS, FACETS, Tag, TagVocabulary, attribute_tags, normalise

__all__ = [
    "MISSPELLING_RATIO",
    "CleaningReport",
    "StepReport",
    "STEPS",
    "clean_tags",
    "damerau_levenshtein",
    "FuzzyMatcher",
    "attribute_recovery",
]

#: the steps, in the order they run, and what each does
STEPS: dict[str, str] = {
    "normalise": "case, NFKC, ё → е, punctuation and emoji, spaces",
    "stopwords": "ad phrases, praise, boilerplate and edge grammar words removed",
    "typos": "words corrected to the vocabulary (Damerau-Levenshtein)",
    "aliases": "surface forms read as canonical tags",
    "merge": "one tag once per product",
    "rare": "tags outside the vocabulary kept only when enough products have them",
}
MAX_EXAMPLES = 5
#: words shorter than this are never corrected: too many real words lie one edit apart
MIN_FUZZY_LEN = 4
#: words this long or longer may take up to ``fuzzy_max_edits`` corrections; shorter ones one
LONG_WORD_LEN = 8
#: an out-of-vocabulary word one edit from a known word this many times as common in the catalog is a slip
MISSPELLING_RATIO = 10
_NUMBER = re.compile(r"^[\d\s.,-]+$")


# ---------------------------------------------------------------------------- report


@dataclass
class StepReport:
    """What one step did: counts of tags it touched, and a few examples."""

    name: str
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] += n

    def example(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES and text not in self.examples:
            self.examples.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {"description": STEPS.get(self.name, ""), "counts": dict(self.counts), "examples": list(self.examples)}


@dataclass
class CleaningReport:
    """What the cleaning did to a catalog's raw tags, step by step."""

    products: int = 0
    raw_tags: int = 0
    tags: int = 0
    products_without_tags: int = 0
    facets: Counter[str] = field(default_factory=Counter)
    steps: dict[str, StepReport] = field(default_factory=lambda: {name: StepReport(name) for name in STEPS})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: totals, tags per facet, and every step's counts and examples."""
        return {
            "products": self.products,
            "raw_tags": self.raw_tags,
            "tags": self.tags,
            "tags_per_product": round(self.tags / self.products, 3) if self.products else 0.0,
            "products_without_tags": self.products_without_tags,
            "facets": {f: self.facets.get(f, 0) for f in FACETS},
            "steps": {name: step.to_dict() for name, step in self.steps.items()},
        }

    def summary(self) -> str:
        """A few readable lines: the totals, then one line per step with an example or two."""
        per = self.tags / self.products if self.products else 0.0
        lines = [
            f"{self.products:,} products: {self.raw_tags:,} raw tags -> {self.tags:,} tags "
            f"({per:.1f} per product, {self.products_without_tags:,} products without tags)",
            "  by facet: " + ", ".join(f"{f} {self.facets.get(f, 0):,}" for f in FACETS),
        ]
        for name, step in self.steps.items():
            counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in step.counts.items()) or "nothing to do"
            lines.append(f"  {name:<10} {counts}")
            for ex in step.examples[:2]:
                lines.append(f"  {'':<10}   e.g. {ex}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------------------- fuzzy matching


def damerau_levenshtein(a: str, b: str, max_dist: int | None = None) -> int:
    """Edits (insert, delete, substitute, swap of neighbours) from ``a`` to ``b``: the optimal
    string alignment distance. With ``max_dist``, any answer above it comes back as ``max_dist + 1``
    as soon as that is certain."""
    if a == b:
        return 0
    cap = max_dist if max_dist is not None else len(a) + len(b)
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > cap:
            return cap + 1
        prev2, prev = prev, cur
    return min(prev[-1], cap + 1)


def _deletes(word: str, k: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(k):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


class FuzzyMatcher:
    """The one known word nearest a misspelt one, found through a deletion index (SymSpell's
    trick: two words within k edits share a string reachable by at most k deletions from each),
    then checked with :func:`damerau_levenshtein`."""

    def __init__(self, words: Iterable[str], max_edits: int) -> None:
        self.max_edits = max_edits
        self.words = frozenset(w for w in words if len(w) >= MIN_FUZZY_LEN - 1)
        self._index: dict[str, set[str]] = defaultdict(set)
        if max_edits > 0:
            for w in self.words:
                for d in _deletes(w, max_edits):
                    self._index[d].add(w)

    def allowed(self, word: str) -> int:
        """Edits a word of this length may take: none below 4 letters, 1 up to 7, more when longer."""
        if len(word) < MIN_FUZZY_LEN or self.max_edits == 0:
            return 0
        return min(1, self.max_edits) if len(word) < LONG_WORD_LEN else self.max_edits

    def nearest(self, word: str) -> list[str]:
        """Every known word at the smallest distance within reach of ``word`` (none when it is known
        or too short to correct), sorted."""
        k = self.allowed(word)
        if k == 0 or word in self.words:
            return []
        candidates: set[str] = set()
        for d in _deletes(word, k):
            candidates |= self._index.get(d, set())
        best: list[str] = []
        best_d = k + 1
        for c in candidates:
            d = damerau_levenshtein(word, c, k)
            if d < best_d:
                best, best_d = [c], d
            elif d == best_d:
                best.append(c)
        return sorted(best) if best_d <= k else []

    def within_one(self, word: str) -> list[str]:
        """Every known word one edit from ``word``, whatever its length (for spotting slips, not fixing them)."""
        cands: set[str] = set()
        for d in _deletes(word, 1):
            cands |= self._index.get(d, set())
        return [c for c in cands if c != word and damerau_levenshtein(word, c, 1) <= 1]

    def match(self, word: str) -> tuple[str | None, bool]:
        """``(best, ambiguous)``: the unique nearest known word within reach, or ``None``;
        ``ambiguous`` when two or more were equally near (then nothing is corrected)."""
        best = self.nearest(word)
        if len(best) == 1:
            return best[0], False
        return None, len(best) > 1


# ---------------------------------------------------------------------------- stop phrases


@dataclass(frozen=True)
class _StopList:
    phrases: frozenset[tuple[str, ...]]  # ad, praise, boilerplate: cut out wherever they stand
    grammar: frozenset[str]  # trimmed from a piece's edges only ("чехол для телефона" stays whole)
    parts: frozenset[str]  # words of multi-word stop phrases: "free" of "free shipping" is no tag alone
    longest: int

    @property
    def words(self) -> frozenset[str]:
        """Every word that is a stop word by itself or a part of a stop phrase."""
        return frozenset(p[0] for p in self.phrases if len(p) == 1) | self.grammar | self.parts


@lru_cache(maxsize=1)
def _stop_list() -> _StopList:
    grammar = frozenset(normalise(w) for w in FUNCTION_WORDS)
    phrases = frozenset(tuple(n.split(" ")) for n in (normalise(p) for p in STOP_PHRASES) if n and n not in grammar)
    parts = frozenset(w for p in phrases if len(p) > 1 for w in p)
    return _StopList(phrases, grammar, parts, max((len(p) for p in phrases), default=1))


# ---------------------------------------------------------------------------- one raw tag


@dataclass
class _Outcome:
    """What the per-tag steps make of one distinct raw string."""

    norm: str
    pieces: list[str]  # after the stop step
    fixed: list[str]  # pieces after typo correction (and the stop step again where a fix made a stop word)
    fixes: list[tuple[str, str]]
    to_stop: int  # fixes that turned out to be stop words
    ambiguous: int
    tags: list[Tag]  # vocabulary tags found
    rest: list[str]  # spans no alias covers: candidates for "other"
    translated: int  # tags whose canonical text is not what the card said


class _Cleaner:
    """The per-tag steps (normalise, stop words, typos, aliases), memoised per distinct raw string."""

    def __init__(self, vocab: TagVocabulary, settings: TagSettings) -> None:
        self.vocab = vocab
        self.stop = _stop_list()
        stop_words = self.stop.words
        # typos are corrected towards vocabulary words and stop words alike: "фоото" is "фото", not a new tag
        self.targets = frozenset(w for w in vocab.words if not w.isdigit()) | stop_words
        self.fuzzy = FuzzyMatcher(self.targets, settings.fuzzy_max_edits)
        self.cache: dict[str, _Outcome] = {}
        self._near1: FuzzyMatcher | None = None  # built when the rare step first needs it

    def known(self, word: str) -> bool:
        return word in self.targets or self.vocab.lookup_word(word) is not None

    def correct(self, word: str) -> tuple[str | None, bool]:
        """The fix of a misspelt word, unique by meaning: equally near candidates that mean the same
        tag ("cotton", and the learned misspelling "coton", for "ctton") or are all stop words agree."""
        best = self.fuzzy.nearest(word)
        if len(best) <= 1:
            return (best[0] if best else None), False
        meanings = {self.meaning(c) for c in best}
        if len(meanings) > 1:
            return None, True
        meaning = meanings.pop()
        if isinstance(meaning, Tag):  # the canonical spelling if it is among them, else the best supported alias
            return max(best, key=lambda c: (c == meaning.text, self.vocab.aliases[c].support
                                            if c in self.vocab.aliases else -1, c)), False
        return best[0], False

    def meaning(self, word: str) -> Tag | str:
        tag = self.vocab.lookup_word(word)
        if tag is not None:
            return tag
        return "stop" if word in self.stop.words else word

    def strip(self, norm: str) -> list[str]:
        """The pieces of a normalised tag once stop phrases are cut out (a cut splits the tag), grammar
        words trimmed from each piece's edges, and pieces of stop-phrase words only ("free", "must have"
        in halves) or only digits dropped. Empty: the tag was nothing else."""
        st = self.stop
        words = norm.split(" ") if norm else []
        pieces: list[list[str]] = [[]]
        i = 0
        while i < len(words):
            for n in range(min(st.longest, len(words) - i), 0, -1):
                if tuple(words[i:i + n]) in st.phrases:
                    pieces.append([])
                    i += n
                    break
            else:
                pieces[-1].append(words[i])
                i += 1
        out = []
        for piece in pieces:
            while piece and piece[0] in st.grammar:
                piece.pop(0)
            while piece and piece[-1] in st.grammar:
                piece.pop()
            text = " ".join(piece)
            if not piece or _NUMBER.match(text):
                continue
            if all(w in st.parts or w in st.grammar for w in piece) and self.vocab.lookup(text) is None:
                continue
            out.append(text)
        return out

    def outcome(self, raw: str) -> _Outcome:
        hit = self.cache.get(raw)
        if hit is not None:
            return hit
        norm = normalise(raw)
        pieces = self.strip(norm)
        fixed: list[str] = []
        fixes: list[tuple[str, str]] = []
        ambiguous = to_stop = 0
        stop_words = self.stop.words
        for piece in pieces:
            words = []
            made_stop = False
            for w in piece.split(" "):
                if not self.known(w):
                    best, amb = self.correct(w)
                    ambiguous += amb
                    if best is not None:
                        fixes.append((w, best))
                        if best in stop_words and best not in self.vocab.words:
                            to_stop += 1
                            made_stop = True
                        w = best
                words.append(w)
            fixed.extend(self.strip(" ".join(words)) if made_stop else [" ".join(words)])
        tags: list[Tag] = []
        rest: list[str] = []
        translated = 0
        for piece in fixed:
            found, left = self.vocab.segment(piece)
            tags.extend(found)
            translated += sum(f" {t.text} " not in f" {piece} " for t in found)
            for span in left:  # less grammar words the aliases left at its edges
                rest.extend(self.strip(span))
        out = _Outcome(norm, pieces, fixed, fixes, to_stop, ambiguous, tags, rest, translated)
        self.cache[raw] = out
        return out

    def misspelt(self, tag: Tag, df: Counter[str]) -> bool:
        """An "other" tag whose every word is a stop word or a near miss of a far commoner known word.

        Words under 4 letters are never corrected ("сул" could be many things), but a word one
        edit from a known word that the catalog uses :data:`MISSPELLING_RATIO` times as often is
        a slip, not a new tag, and is not kept however many products repeat the slip.
        """
        for w in tag.text.split(" "):
            if w in self.stop.words:
                continue
            if len(w) < 3:
                return False
            near = [k for k in self._near(w) if df[k] >= MISSPELLING_RATIO * max(df[w], 1)]
            if not near:
                return False
        return True

    def _near(self, word: str) -> list[str]:
        if self._near1 is None:
            self._near1 = FuzzyMatcher((w for w in self.targets if len(w) >= 3), 1)
        return self._near1.within_one(word)


# ---------------------------------------------------------------------------- the whole catalog


def clean_tags(
    raw: Sequence[Sequence[str]], vocab: TagVocabulary, settings: TagSettings
) -> tuple[list[list[Tag]], CleaningReport]:
    """Clean the raw tags of each product into canonical :class:`Tag`\\ s, and say what was done.

    ``raw[i]`` are product i's raw tags (any language, any noise); the answer's ``[i]`` are its
    tags, vocabulary facets first, each tag once. Uses ``settings.min_count`` (products a tag
    outside the vocabulary needs) and ``settings.fuzzy_max_edits``.
    """
    report = CleaningReport(products=len(raw))
    steps = report.steps
    cleaner = _Cleaner(vocab, settings)
    per_product: list[list[tuple[Tag, str]]] = []
    df: Counter[str] = Counter()  # products whose raw tags use a word: how common a spelling is
    for product_tags in raw:
        found: list[tuple[Tag, str]] = []  # (tag, the surface it came from)
        words: set[str] = set()
        for item in product_tags:
            report.raw_tags += 1
            o = cleaner.outcome(str(item) if item is not None else "")
            words.update(o.norm.split(" "))
            # 1. normalise
            if not o.norm:
                steps["normalise"].add("emptied")
                steps["normalise"].example(f"{item!r} -> (nothing)")
                continue
            if o.norm != item:
                steps["normalise"].add("changed")
                if o.norm.casefold() != str(item).casefold():
                    steps["normalise"].example(f"{item!r} -> {o.norm!r}")
            # 2. stop words
            if not o.pieces:
                steps["stopwords"].add("dropped")
                steps["stopwords"].example(f"{o.norm!r} dropped")
                continue
            if o.pieces != [o.norm]:
                steps["stopwords"].add("trimmed")
                steps["stopwords"].example(f"{o.norm!r} -> {' | '.join(map(repr, o.pieces))}")
            # 3. typos
            if o.fixes:
                steps["typos"].add("fixed")
                steps["typos"].add("words_fixed", len(o.fixes))
                steps["typos"].add("fixed_to_stopword", o.to_stop)
                for w, best in o.fixes:
                    steps["typos"].example(f"{w!r} -> {best!r}")
                if not o.fixed:
                    steps["typos"].add("dropped")
                    continue
            steps["typos"].add("ambiguous_left", o.ambiguous)
            # 4. aliases
            for tag in o.tags:
                steps["aliases"].add("resolved")
                found.append((tag, " ".join(o.fixed)))
            if o.translated:
                steps["aliases"].add("translated", o.translated)
                if len(o.tags) == 1 and len(o.fixed) == 1:
                    steps["aliases"].example(f"{o.fixed[0]!r} -> {o.tags[0].facet}:{o.tags[0].text}")
            if len(o.tags) + len(o.rest) > len(o.fixed):
                steps["aliases"].add("split")
            for span in o.rest:
                steps["aliases"].add("unresolved")
                found.append((Tag(span, "other"), span))
        per_product.append(found)
        df.update(words)

    # 5. merge: each tag once per product
    merged: list[list[Tag]] = []
    for found in per_product:
        surfaces: dict[Tag, set[str]] = {}
        order: list[Tag] = []
        for tag, surface in found:
            if tag in surfaces:
                steps["merge"].add("duplicates")
            else:
                surfaces[tag] = set()
                order.append(tag)
            surfaces[tag].add(surface)
        for tag in order:
            if len(surfaces[tag]) > 1:
                steps["merge"].add("synonyms")
                steps["merge"].example(f"{', '.join(sorted(map(repr, surfaces[tag])))} -> {tag.facet}:{tag.text}")
        merged.append(order)

    # 6. rare: a tag outside the vocabulary needs min_count products, and must not be a repeated slip
    support = Counter(t for tags in merged for t in tags if t.facet == "other")
    misspelt = {t for t, n in support.items() if n >= settings.min_count and cleaner.misspelt(t, df)}
    keep = {t for t, n in support.items() if n >= settings.min_count and t not in misspelt}
    steps["rare"].add("kept_distinct", len(keep))
    steps["rare"].add("dropped_distinct", len(support) - len(keep))
    steps["rare"].add("misspelt_distinct", len(misspelt))
    for t, n in sorted(support.items(), key=lambda x: -x[1]):
        if t in keep:
            steps["rare"].example(f"kept {t.text!r} ({n} products)")
    result: list[list[Tag]] = []
    for tags in merged:
        out = []
        for t in tags:
            if t.facet == "other" and t not in keep:
                steps["rare"].add("misspelt" if t in misspelt else "dropped")
                continue
            if t.facet == "other":
                steps["rare"].add("kept")
            out.append(t)
        out.sort(key=lambda t: FACETS.index(t.facet) if t.facet in FACETS else len(FACETS))  # stable
        result.append(out)
        report.tags += len(out)
        report.facets.update(t.facet for t in out)
        report.products_without_tags += not out
    return result, report


def attribute_recovery(
    attributes: Sequence[Mapping[str, Any]], tags: Sequence[Sequence[Tag]], facets: Sequence[str] = ATTRIBUTE_FACETS
) -> dict[str, Any]:
    """Share of products whose cleaned tags hold each of their attribute values, per facet.

    ``attributes[i]`` is product i's row (``{"colour": "red", ...}``). A facet no row has is left
    out. ``all`` is the share of products that got every attribute they have; ``mean`` averages
    the facets.
    """
    per: dict[str, float] = {}
    complete = 0
    counted = 0
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for row, product_tags in zip(attributes, tags, strict=True):
        have = set(product_tags)
        wanted = attribute_tags(row, facets)
        for t in wanted:
            totals[t.facet] += 1
            hits[t.facet] += t in have
        if wanted:
            counted += 1
            complete += all(t in have for t in wanted)
    for f in facets:
        if totals[f]:
            per[f] = round(hits[f] / totals[f], 4)
    out: dict[str, Any] = dict(per)
    out["mean"] = round(sum(per.values()) / len(per), 4) if per else 0.0
    out["all"] = round(complete / counted, 4) if counted else 0.0
    return out
