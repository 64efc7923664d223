"""Recommendation models of the ad server: pure numpy / scipy / scikit-learn, no I/O but artifact files.

- ``similarity``: similar products from text (content) and from shopping sessions (behaviour), their blend,
  and popularity.
- ``artifact``: the versioned, pickle-free files a training run writes and the servers load.
- ``evaluate``: offline evaluation by replaying an event log, with two baselines.
"""
