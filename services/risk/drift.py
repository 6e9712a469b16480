"""The class mix against the mix the version in force was approved with: shown, and watched monthly.

An approved version's bands are never re-cut: its classification stays what was approved and can be
reproduced. But the indicators counted from published results move its scores as results pile up
(clean inspections lower them), so its mix — at the plan's ratios, the inspection budget — drifts.
The mix a version was approved with is the class counts of its first classification (``risk_run``);
the current mix, those of its latest. After each monthly classification (:func:`check`, called by
``services.risk.classify.monthly_sweep``) a class whose share moved beyond the model's
``mix_tolerance`` (relative) makes the sweep

- propose a retrain (``risk train``, as the scheduler): a version learned from the results so far,
  its bands set to give the **approved** mix again, waiting for a coordinator's approval like any
  proposal (audited ``risk_model_proposed``), with the drift in its comparison; and
- alert the coordinators (``services.alerts.raise_alert``, template ``risk_drift``), recorded in the
  audit chain (``risk_mix_drift``) in the alert's transaction.

One alert per drift, not one per sweep: while the sweep's proposal for the version in force waits
the sweep says nothing more. When no retrain could be learned (too few results) the alert says so
and each later monthly sweep tries again, silently while it still cannot, and alerts once more when
it can (the coordinators were told none could be proposed, so a retrain waiting is news). Approving a version resolves it (the new version's first classification is
its approved mix); rejecting the proposal leaves the budget off what was approved, so the next sweep
alerts and proposes again: to keep a different mix, approve a version that gives it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from core import db
from domain.risk import drift
from models.alerts import Alert
from models.directory import Department
from models.risk import RiskModelVersion, RiskRun, VersionStatus
from services import audit
from services.alerts import raise_alert
from services.risk import train
from services.risk.versions import RiskError, approved_run, in_force

ACTOR = "scheduler:risk_mix"  # who proposes a retrain for a drifted mix (the audit chain names it)
KIND = "risk_drift"


@dataclass(frozen=True)
class Mix:
    version: str
    tolerance: float
    approved_at: datetime
    approved: dict[str, int]  # class counts of the version's first classification
    at: datetime
    current: dict[str, int]  # of its latest
    shares: list[drift.ClassShare]
    pending: str  # the sweep's proposal waiting for a decision, if any

    @property
    def drifted(self) -> list[str]:
        return drift.drifted(self.shares)

    def shown(self, zone: ZoneInfo) -> dict:
        """For the templates (``risk show``, ``/riskmodels``)."""
        return {
            "version": self.version,
            "tolerance": self.tolerance,
            "approved_on": self.approved_at.astimezone(zone).date().isoformat(),
            "on": self.at.astimezone(zone).date().isoformat(),
            "approved_total": sum(self.approved.values()),
            "total": sum(self.current.values()),
            "shares": [asdict(s) for s in self.shares],
            "drifted": self.drifted,
            "pending": self.pending,
        }


async def mix() -> Mix | None:
    """The version in force's mix now against its approved one (None before its first classification)."""
    found = await in_force()
    if found is None:
        return None
    version, model = found
    first = await approved_run(version)
    last = await RiskRun.filter(version=version).order_by("-at", "-id").first()
    if first is None or last is None or not sum(first.counts.values()):
        return None
    compared = drift.compare(first.counts, last.counts, model.classes, model.mix_tolerance)
    return Mix(
        version,
        model.mix_tolerance,
        first.at,
        dict(first.counts),
        last.at,
        dict(last.counts),
        compared,
        await _pending(version),
    )


async def _pending(version: str) -> str:
    row = (
        await RiskModelVersion.filter(status=VersionStatus.PROPOSED, based_on=version, created_by=ACTOR)
        .order_by("-created_at", "-id")
        .first()
    )
    return row.version if row else ""


async def _last_alert(version: str) -> dict | None:
    """The context of the newest drift alert about ``version`` (None if none)."""
    for context in await Alert.filter(kind=KIND).order_by("-created_at", "-id").values_list("context", flat=True):
        context = db.decoded(context, {})
        if context.get("version") == version:
            return context
    return None


async def check(now: datetime, zone: ZoneInfo) -> str:
    """After a monthly classification: ``steady``; ``told`` (drifted, its retrain still waiting for a
    decision); ``retried`` (drifted, told already that no retrain could be learned, and still none can:
    nothing said); or ``alerted`` (drifted: a retrain proposed if one could be learned, the
    coordinators alerted — once for a drift, and once more when a retry finally proposes one)."""
    found = await mix()
    if found is None or not found.drifted:
        return "steady"
    if await _pending(found.version):
        return "told"
    last = await _last_alert(found.version)
    retry = last is not None and not last.get("proposal")  # told "none could be learned": try again
    local = now.astimezone(zone)
    name = f"{found.version[:52]}-mix{local:%Y%m}"
    seen = found.shown(zone)
    proposal, problem, params = "", "", {}
    try:  # the bands keep the approved mix: train's one rule for every proposal
        await train.train(now, name=name, actor=ACTOR, extra_metrics={"mix": seen})
        proposal = name
    except RiskError as exc:
        if retry:
            return "retried"  # one alert per drift: the coordinators know none could be learned yet
        problem, params = exc.code, exc.params  # the alert says why (e.g. how many results, how many needed)
    context = {**seen, "proposal": proposal, "problem": problem, "problem_params": params, "retried": retry}
    departments = set(await Department.all().values_list("code", flat=True))
    async with db.transaction() as conn:
        key = f"{KIND}:{found.version}:{local:%Y-%m}"
        raised = await raise_alert(key, "risk_drift.j2", context, departments, now, conn)
        if raised:
            await audit.append(ACTOR, "risk_mix_drift", found.version, context, now, conn)
    return "alerted" if raised else "told"
