"""A/B experiments beyond assignment (:mod:`visearch.experiments`): statistics, reports, administration."""
