"""The credit-risk engine's use cases: model versions (``versions``), indicator values and the
classification of the directory (``classify``, vectorised in ``matrix``), learning from inspection
results (``train``), the simulated world it is evaluated on (``world``, ``evaluate``) and the
inspectors' strictness (``strictness``). Classes and scores are for coordinators only."""
