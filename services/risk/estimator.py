"""The estimator :func:`services.risk.learn.fit` calibrates: scikit-learn's L2 logistic regression with
every weight against its indicator's stated direction refitted at 0.

A module of its own so that scikit-learn (with SciPy, ≈ 0.6 s of imports) is loaded only by what
learns or measures — ``risk train``, the evaluation, the monthly retrain — not by every process that
imports the risk services (the bot, ``inspectbot serve``, each CLI command; tests/test_static.py).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class DirectedLogit(ClassifierMixin, BaseEstimator):
    """L2 logistic regression whose weights against the stated direction are refitted at 0."""

    def __init__(self, C: float) -> None:  # services.risk.learn.C
        self.C = C

    def fit(self, X, y, sample_weight=None):
        first = LogisticRegression(C=self.C, max_iter=500).fit(X, y, sample_weight=sample_weight)
        keep = first.coef_[0] > 0
        self.coef_ = np.zeros(X.shape[1])
        if keep.any():
            second = LogisticRegression(C=self.C, max_iter=500).fit(X[:, keep], y, sample_weight=sample_weight)
            coef = np.clip(second.coef_[0], 0.0, None)
            self.coef_[keep] = coef
            self.intercept_ = float(second.intercept_[0])
        else:
            self.intercept_ = float(first.intercept_[0])
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X):
        return X @ self.coef_ + self.intercept_

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        return (self.decision_function(X) > 0).astype(int)
