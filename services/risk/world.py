"""A generated world where the truth is known: indicator values and a hidden propensity per entity.

Each entity has a latent risk r ~ N(0, 1). Each informative indicator is a noisy, monotone view of
r (its ``loading`` says how noisy); a few indicators are pure noise (loading 0). The propensity —
the chance an inspection finds a problem — is σ(α + γ·r + δ·ν) with ν ~ N(0, 1) a part of the
risk no indicator shows; α is solved so the mean propensity is the base rate (15 % by default).
The engine never sees r, ν or the propensity: only the indicator values and, after inspections,
their outcomes. Deterministic for a seed. Indicators counted from results (``source = "results"``)
start at 0 (nobody has been inspected) and draw nothing, so a model with them generates the same
world as one without.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain.risk.model import RiskModel

GAMMA = 2.2  # weight of the visible latent risk in the propensity's logit
DELTA = 0.8  # weight of the invisible part
BASE_RATE = 0.15

#: How strongly each indicator of the example models follows the latent risk (0 = pure noise).
LOADINGS = {
    "registered_months": 0.3,
    "registered_capital_log": 0.2,
    "employees_log": 0.2,
    "branch_count": 0.0,
    "legal_rep_changes_3y": 0.35,
    "address_changes_3y": 0.3,
    "annual_report_late": 0.45,
    "annual_report_missing": 0.4,
    "tax_credit_level": 0.5,
    "tax_arrears": 0.45,
    "social_insurance_arrears": 0.4,
    "revenue_change": 0.0,
    "abnormal_operation_list": 0.45,
    "penalties_3y": 0.6,
    "penalty_amount_log": 0.5,
    "complaints_1y": 0.55,
    "reports_1y": 0.5,
    "past_inspection_problems_3y": 0.65,
    "rectification_overdue": 0.5,
    "licence_revocations": 0.3,
    "product_sampling_failures": 0.5,
    "warnings_1y": 0.45,
    "lawsuits_defendant_3y": 0.3,
    "enforcement_cases": 0.35,
    "dishonest_judgement_debtor": 0.4,
    "equity_frozen": 0.25,
    "criminal_cases": 0.25,
    "serious_bad_faith_list": 0.45,
    "media_negative_1y": 0.35,
    "honours_3y": 0.0,
    "credit_commitment": 0.15,
    "industry_association_member": 0.0,
    "consumer_rating": 0.35,
    "hotline_12345": 0.4,
    "related_entities_abnormal": 0.3,
    "shareholder_dishonest": 0.3,
    "legal_rep_other_abnormal": 0.3,
    "shared_address_count": 0.0,
    "related_penalties_3y": 0.25,
}
#: Indicators that are yes/no (1 when the underlying variable passes the quantile given).
BINARY = {
    "tax_arrears": 0.93,
    "social_insurance_arrears": 0.92,
    "abnormal_operation_list": 0.94,
    "dishonest_judgement_debtor": 0.97,
    "equity_frozen": 0.98,
    "criminal_cases": 0.99,
    "serious_bad_faith_list": 0.995,
    "credit_commitment": 0.6,
    "industry_association_member": 0.8,
    "shareholder_dishonest": 0.97,
}


@dataclass
class World:
    values: np.ndarray  # n × k raw indicator values, in model.codes order
    propensity: np.ndarray  # n, hidden
    latent: np.ndarray  # n, hidden


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate(model: RiskModel, n: int, seed: int, base_rate: float = BASE_RATE) -> World:
    """``n`` entities' indicator values for ``model``'s indicators and their hidden propensity."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(n)
    hidden = rng.standard_normal(n)
    values = np.empty((n, len(model.indicators)))
    for j, ind in enumerate(model.indicators):
        if ind.derived:  # counted from inspection results: none yet in a new world
            values[:, j] = 0.0
            continue
        loading = LOADINGS.get(ind.code, 0.0)
        u = loading * r + np.sqrt(1.0 - loading**2) * rng.standard_normal(n)
        if ind.direction == "down":
            u = -u
        span = ind.high - ind.low
        if ind.code in BINARY:
            x = (u > np.quantile(u, BINARY[ind.code])).astype(float)
            x = ind.low + span * x
        elif span <= 20 and ind.low == 0:  # a count: Poisson with a mean that grows with u
            x = rng.poisson(np.exp(np.log(max(span, 1.0) / 6.0) + 0.9 * u)).astype(float)
        else:  # a continuous quantity spread over the indicator's range
            x = ind.low + span * _sigmoid(1.5 * u + rng.normal(0, 0.2, n))
            x = np.round(x, 3)
        values[:, j] = x
    logit = GAMMA * r + DELTA * hidden
    lo, hi = -10.0, 5.0
    for _ in range(60):  # bisection on α for the base rate
        mid = (lo + hi) / 2
        if _sigmoid(mid + logit).mean() < base_rate:
            lo = mid
        else:
            hi = mid
    return World(values=values, propensity=_sigmoid((lo + hi) / 2 + logit), latent=r)
