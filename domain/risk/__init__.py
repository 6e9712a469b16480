"""The credit-risk engine's pure rules: the indicator model (:mod:`domain.risk.model`) and scoring
(:mod:`domain.risk.score`). Standard library only; the vectorised and learning parts are in
``services.risk``."""
