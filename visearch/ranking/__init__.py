"""Ranking beyond similarity: candidate features (enrichment), the XGBoost ranker, the online re-ranker.

Search finds candidates by vector similarity; what a shopper clicks and buys also depends on price,
rating and reviews. :mod:`features` turns each candidate into one row of numbers, the same offline
(training on logged sessions) and online (serving); :mod:`ranker` learns an order from logged clicks,
carts and orders (XGBoost, LambdaMART); :mod:`online` keeps adjusting it from the live event stream.
"""
