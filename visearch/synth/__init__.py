"""WB-Synth: a deterministic synthetic marketplace (products, seller and shopper
photos, labels, variants, triplets, shopper sessions) to train and measure on.

>>> from visearch.synth import generate, check_dataset
>>> manifest = generate("data/wb", n_products=50, seed=0)   # doctest: +SKIP
>>> check_dataset("data/wb")                                # doctest: +SKIP
[]
"""

from visearch.synth.check import check_dataset
from visearch.synth.dataset import SCHEMA_VERSION, generate

__all__ = ["generate", "check_dataset", "SCHEMA_VERSION"]
