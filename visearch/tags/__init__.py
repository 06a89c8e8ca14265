"""Tags of the catalog: generated from cards or photos, cleaned to a canonical vocabulary.

- :mod:`~visearch.tags.vocabulary`: canonical tags from the attribute columns and the
  aliases (Russian, English, misspelt) learned from the catalog's titles;
- :mod:`~visearch.tags.generate`: raw tags from an offline n-gram extractor, or from a
  language or vision-language model behind an OpenAI-compatible endpoint
  (:mod:`~visearch.tags.openai_compat`);
- :mod:`~visearch.tags.clean`: raw tags to canonical ones, step by step, with a report.
"""

from __future__ import annotations

from visearch.tags.clean import CleaningReport, StepReport, attribute_recovery, clean_tags, damerau_levenshtein
from visearch.tags.generate import (
    ExtractorTagger,
    LLMTagger,
    ProductCard,
    TagGenerator,
    VLMTagger,
    cards_from_catalog,
    make_generator,
)
from visearch.tags.openai_compat import EndpointClient, EndpointStats, TagCache
from visearch.tags.vocabulary import Tag, TagVocabulary, normalise

__all__ = [
    "Tag",
    "TagVocabulary",
    "normalise",
    "CleaningReport",
    "StepReport",
    "clean_tags",
    "attribute_recovery",
    "damerau_levenshtein",
    "ProductCard",
    "TagGenerator",
    "ExtractorTagger",
    "LLMTagger",
    "VLMTagger",
    "make_generator",
    "cards_from_catalog",
    "EndpointClient",
    "EndpointStats",
    "TagCache",
]
