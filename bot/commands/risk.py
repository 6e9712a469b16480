"""``inspectbot risk load|versions|approve|reject|classify|show|train|evaluate``: the credit-risk engine.

``load FILE`` stores a model file as a proposed version; ``approve``/``reject VERSION`` decide a
proposal (audited; only an approved version classifies); ``classify`` classifies the directory now;
``show CODE|NAME`` prints an entity's class and reasons (confidential: the operator's terminal only);
``train`` learns a version from the inspection results and proposes it with its evaluation and the
class mix it gives (its bands keep the approved mix unless ``--shares file``);
``evaluate`` simulates monthly cycles on a generated world (docs/risk.md);
``override propose|approve|reject|withdraw|list``: a regulator's class for one firm, proposed by one
person and put in force by another (``--by`` names each; the same name twice is refused).
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import asdict
from datetime import date
from pathlib import Path

from core import charts, db
from core.clock import SYSTEM
from core.render import render, text
from domain.errors import ServiceError
from domain.risk.model import parse_model
from services import people
from services.risk import classify, drift, evaluate, overrides, train, versions
from services.risk.versions import RiskError

CLI_ACTOR = "cli"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "risk" / "shandong-a-e.toml"


def register(sub) -> None:
    parser = sub.add_parser("risk", help="credit-risk classes: model versions, classification, learning")
    group = parser.add_subparsers(dest="risk_command", required=True, metavar="ACTION")
    p = group.add_parser("load", help="store a model file (TOML, examples/risk/) as a proposed version")
    p.add_argument("file", type=Path)
    p.add_argument("--by", default=CLI_ACTOR, help="who proposes it (audit log)")
    p.set_defaults(func=run_load)
    p = group.add_parser("versions", help="list the model versions and their evaluation")
    p.set_defaults(func=run_versions)
    for action in ("approve", "reject"):
        p = group.add_parser(action, help=f"{action} a proposed version (audited)")
        p.add_argument("version")
        p.add_argument("--by", default=CLI_ACTOR, help="who decides (audit log)")
        p.set_defaults(func=run_decide, approve=action == "approve")
    p = group.add_parser("classify", help="classify the whole directory now with the version in force")
    p.add_argument("--force", action="store_true", help="even while an announced draw waits (its classes change)")
    p.set_defaults(func=run_classify)
    p = group.add_parser(
        "show",
        help="an entity's class, score and reasons; without one, the class mix against the approved (confidential)",
    )
    p.add_argument("query", nargs="?", default="", help="credit code or part of a name")
    p.set_defaults(func=run_show)
    p = group.add_parser("train", help="learn a version from the inspection results and propose it")
    p.add_argument("--name", required=True, help="the new version's name")
    p.add_argument("--by", default=CLI_ACTOR)
    p.add_argument(
        "--plan",
        help="measure discovery rates at this plan's ratios (default A 3 %%, B 5 %%, C 10 %%, D 50 %%, E 100 %%)",
    )
    p.add_argument(
        "--shares",
        choices=train.SHARES_FROM,
        default="approved",
        help="the class mix the bands give: the mix the version in force was approved with (default, the "
        "approved budget), or 'file': the [shares] of its model file (a different budget, shown in the comparison)",
    )
    p.set_defaults(func=run_train)
    p = group.add_parser("evaluate", help="simulate classify → draw → inspect → learn on a generated world")
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--entities", type=int, default=2_000, help="default: the generated city's default size")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", type=Path, default=EXAMPLE, help="the starting model file")
    p.add_argument("--plot", type=Path, help="write a PNG of the discovery rate by cycle")
    p.add_argument(
        "--ceiling-without-rules",
        action="store_true",
        help="also print the second reference: the oracle that knows the hidden model, without the model's set rules",
    )
    p.set_defaults(func=run_evaluate)
    _register_override(group)


def _register_override(group) -> None:
    parser = group.add_parser(
        "override", help="a regulator's class for one firm: proposed, approved by another (audited)"
    )
    actions = parser.add_subparsers(dest="override_command", required=True, metavar="ACTION")
    p = actions.add_parser("propose", help="propose a class for one firm until a date, with a reason")
    p.add_argument("credit_code")
    p.add_argument("risk_class", metavar="class")
    p.add_argument("--until", required=True, type=date.fromisoformat, help="the last day it applies (YYYY-MM-DD)")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", default=CLI_ACTOR, help="who proposes it (audit log)")
    p.set_defaults(func=run_override_propose)
    for action in ("approve", "reject"):
        p = actions.add_parser(action, help=f"{action} a proposed override (not by its proposer; audited)")
        p.add_argument("override", type=int)
        p.add_argument("--by", required=True, help="who decides (audit log): not the proposer")
        p.set_defaults(func=run_override_decide, approve=action == "approve")
    p = actions.add_parser("withdraw", help="end an override proposed or in force, with a reason (audited)")
    p.add_argument("override", type=int)
    p.add_argument("--reason", required=True)
    p.add_argument("--by", default=CLI_ACTOR, help="who withdraws it (audit log)")
    p.set_defaults(func=run_override_withdraw)
    p = actions.add_parser("list", help="the overrides waiting or in force (--all: every one)")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=run_override_list)


def _error(exc: ServiceError, locale: str) -> int:
    print(text("risk_error", locale, error=exc.code, p=exc.params), file=sys.stderr)
    return 2


async def _override_step(settings, step) -> int:
    """Run one override service call (``step``: the coroutine function to await inside the
    database), print the override it returns or the refusal."""
    async with db.opened(settings):
        try:
            o = await step()
        except ServiceError as exc:  # the risk engine's refusals and the two-person rule's
            return _error(exc, settings.locale)
    print(render("cli/risk.txt", settings.locale, what="override", o=o.context()).strip())
    return 0


async def run_override_propose(args, settings, clock=SYSTEM) -> int:
    return await _override_step(
        settings,
        lambda: overrides.propose(
            args.credit_code,
            args.risk_class,
            args.reason,
            args.until,
            actor=args.by,
            departments=None,
            now=clock.now(),
            zone=settings.zone,
        ),
    )


async def run_override_decide(args, settings, clock=SYSTEM) -> int:
    return await _override_step(
        settings,
        lambda: overrides.decide(
            args.override, args.approve, actor=args.by, departments=None, now=clock.now(), zone=settings.zone
        ),
    )


async def run_override_withdraw(args, settings, clock=SYSTEM) -> int:
    return await _override_step(
        settings,
        lambda: overrides.withdraw(
            args.override, args.reason, actor=args.by, departments=None, now=clock.now(), zone=settings.zone
        ),
    )


async def run_override_list(args, settings) -> int:
    async with db.opened(settings):
        shown = await overrides.listing(settings.zone, open_only=not args.all)
    items = [o.context() for o in shown.items]
    print(render("cli/risk.txt", settings.locale, what="overrides", items=items, total=shown.total).strip())
    return 0


async def run_load(args, settings, clock=SYSTEM) -> int:
    try:
        model = versions.read_model_file(args.file)
    except RiskError as exc:
        return _error(exc, settings.locale)
    async with db.opened(settings):
        try:
            await versions.propose(model, actor=args.by, now=clock.now())
        except RiskError as exc:
            return _error(exc, settings.locale)
    print(render("cli/risk.txt", settings.locale, what="loaded", version=model.name, n=len(model.indicators)).strip())
    return 0


async def run_versions(args, settings) -> int:
    async with db.opened(settings):
        rows = await versions.listing()
        current = await versions.in_force()
        names = await people.whos(r.decided_by for r in rows if r.decided_by)  # as people read them
    listed = [
        {
            "version": r.version,
            "status": r.status.value,
            "based_on": r.based_on,
            "metrics": r.metrics,
            "created_at": r.created_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M"),
            "decided_by": names[r.decided_by] if r.decided_by else "",
        }
        for r in rows
    ]
    print(
        render(
            "cli/risk.txt", settings.locale, what="versions", rows=listed, current=current[0] if current else ""
        ).strip()
    )
    return 0


async def run_decide(args, settings, clock=SYSTEM) -> int:
    async with db.opened(settings):
        try:
            row = await versions.decide(args.version, approve=args.approve, actor=args.by, now=clock.now())
        except RiskError as exc:
            return _error(exc, settings.locale)
    print(render("cli/risk.txt", settings.locale, what="decided", version=row.version, status=row.status.value).strip())
    return 0


async def run_classify(args, settings, clock=SYSTEM) -> int:
    async with db.opened(settings):
        try:
            summary = await classify.classify_directory(
                clock.now(), reason="manual", force=args.force, zone=settings.zone
            )
        except RiskError as exc:
            return _error(exc, settings.locale)
    print(render("cli/risk.txt", settings.locale, what="classified", s=summary).strip())
    return 0 if not summary.deferred else 3


async def run_show(args, settings) -> int:
    if not args.query.strip():
        async with db.opened(settings):
            if await versions.in_force() is None:  # nothing approved: say so, not "not classified yet"
                return _error(RiskError("risk_no_model"), settings.locale)
            mix = await drift.mix()
        print(
            render("cli/risk.txt", settings.locale, what="mix", mix=mix.shown(settings.zone) if mix else None).strip()
        )
        return 0
    async with db.opened(settings):
        try:
            found = await classify.lookup(args.query, settings.zone)
        except RiskError as exc:
            return _error(exc, settings.locale)
    print(render("messages/risk.j2", settings.locale, error=None, found=[asdict(a) for a in found]))
    return 0


async def run_train(args, settings, clock=SYSTEM) -> int:
    async with db.opened(settings):
        try:
            ratios = await train.plan_ratios(args.plan) if args.plan else None
            trained = await train.train(
                clock.now(), name=args.name, actor=args.by, ratios=ratios, shares_from=args.shares
            )
        except RiskError as exc:
            return _error(exc, settings.locale)
    print(render("cli/risk.txt", settings.locale, what="trained", t=trained).strip())
    return 0


async def run_evaluate(args, settings) -> int:
    try:
        model = parse_model(tomllib.loads(args.model.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        print(
            text(
                "risk_error",
                settings.locale,
                error="risk_file_unreadable",
                p={"path": str(args.model), "reason": str(exc)},
            ),
            file=sys.stderr,
        )
        return 2
    for name, value, (low, high) in (
        ("--entities", args.entities, evaluate.ENTITIES),
        ("--cycles", args.cycles, evaluate.CYCLES),
        ("--seed", args.seed, evaluate.SEEDS),
    ):
        if not low <= value <= high:  # a clear refusal, not numpy's traceback or an hour of work
            print(
                text("risk_evaluate_bad", settings.locale, name=name, value=value, low=low, high=high), file=sys.stderr
            )
            return 2
    if args.plot and not (args.plot.parent.is_dir() and os.access(args.plot.parent, os.W_OK)):
        print(text("risk_plot_unwritable", settings.locale, path=str(args.plot)), file=sys.stderr)
        return 2
    cycles = evaluate.simulate(model, entities=args.entities, cycles=args.cycles, seed=args.seed)
    print(
        render(
            "cli/risk.txt",
            settings.locale,
            what="evaluated",
            cycles=cycles,
            entities=args.entities,
            model=model.name,
            tolerance=model.mix_tolerance,
            without_rules=args.ceiling_without_rules,
        )
    )
    if args.plot:
        locale, font = charts.chart_locale(settings.locale)
        names = ("worst", "expected", "ceiling", "all", "uniform", "goal", "x", "y", "title")
        labels = {n: text(f"risk_plot_{n}", locale, entities=args.entities, model=model.name) for n in names}
        try:
            args.plot.write_bytes(evaluate.plot(cycles, labels, font))
        except OSError as exc:
            print(text("risk_plot_unwritable", settings.locale, path=f"{args.plot} ({exc.strerror})"), file=sys.stderr)
            return 2
    return 0
