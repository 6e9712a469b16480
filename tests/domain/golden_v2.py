"""The worked example of protocol v2 (docs/draw-protocol.md §15.10), computed from the protocol text
with nothing but hashlib, hmac and exact fractions (teams by the independent reference
implementation, tests/domain/draw_reference.py) — never with our domain code.

    uv run python -m tests.domain.golden_v2      # prints the section's example, as the doc has it

``tests/domain/test_draw_golden_v2.py`` checks that the document holds exactly this text, that our
code gives the same values, and pins the main ones as literals.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from fractions import Fraction

from tests.domain import draw_reference as ref
from tests.domain.draw_cases import (
    EXAMPLE_BEACON,
    EXAMPLE_CONFLICTS,
    EXAMPLE_INSPECTORS,
    EXAMPLE_POOL,
    EXAMPLE_RATIOS,
    EXAMPLE_REF,
    EXAMPLE_SECRET,
    EXAMPLE_TEAM,
    EXAMPLE_UNITS,
)

SALT_KEY = bytes(range(32, 64))  # 202122…3f
SINGLE = "913702007180000011"  # the entity whose own disclosure line the example shows


def H(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def vectors() -> dict:
    """Every value of the example, as plain data."""
    salts = {k: hmac.new(SALT_KEY, k.encode(), "sha256").digest() for k, _, _ in EXAMPLE_POOL}
    commitments = {
        k: H(b"inspectbot/class/v2\x00" + salts[k] + b"\x00" + k.encode() + b"\x00" + s.encode()).hex()
        for k, s, _ in EXAMPLE_POOL
    }
    pool_file = b"".join(f"{k}\t{commitments[k]}\n".encode() for k, _, _ in EXAMPLE_POOL)
    inspectors_file = b"".join(f"{k}\t{u}\t{','.join(q)}\n".encode() for k, u, q in EXAMPLE_INSPECTORS)
    pool_digest, inspectors_digest = H(pool_file), H(inspectors_file)
    seed = H(
        b"inspectbot/draw/v2\x00"
        + EXAMPLE_SECRET
        + b"\x00"
        + EXAMPLE_BEACON.encode()
        + b"\x00"
        + pool_digest
        + b"\x00"
        + inspectors_digest
        + b"\x00"
        + EXAMPLE_REF.encode()
    )
    ranks = {k: int.from_bytes(H(seed + b"entity\x00" + k.encode())[:8], "big") for k, _, _ in EXAMPLE_POOL}
    strata: dict[str, dict] = {}
    drawn: list[str] = []
    for label in sorted({s for _, s, _ in EXAMPLE_POOL} | set(EXAMPLE_RATIOS)):
        members = sorted((k for k, s, _ in EXAMPLE_POOL if s == label), key=lambda k: (ranks[k], k))
        ratio = EXAMPLE_RATIOS.get(label, "0")
        n = min(len(members), math.ceil(len(members) * Fraction(ratio)))
        if n == 0:
            cut, last, following = None, None, None
        elif n == len(members):
            cut, last, following = "ffffffffffffffff", ranks[members[-1]], None
        else:
            last, following = ranks[members[n - 1]], ranks[members[n]]
            cut = f"{last + (following - last) // 2:016x}"
        strata[label] = {"pool": len(members), "ratio": ratio, "drawn": n, "cut": cut, "last": last, "next": following}
        drawn += members[:n]
    numbered = sorted(drawn, key=lambda k: (ranks[k], k))
    division = {k: d for k, _, d in EXAMPLE_POOL}
    teams = ref.Reference(seed, EXAMPLE_INSPECTORS, EXAMPLE_UNITS, EXAMPLE_TEAM, EXAMPLE_CONFLICTS)
    inspections = []
    for no, key in enumerate(numbered, 1):
        members, reason = teams.form(key, division[key])
        inspections.append(
            {
                "division": division[key],
                "entity": key,
                "no": no,
                "rank": f"{ranks[key]:016x}",
                "team": list(members),
                "unstaffable": reason,
            }
        )
    entries = json.dumps(inspections, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    stratum_of = {k: s for k, s, _ in EXAMPLE_POOL}
    return {
        "salts": {k: v.hex() for k, v in salts.items()},
        "commitments": commitments,
        "pool_file": pool_file.decode(),
        "pool_digest": pool_digest.hex(),
        "inspectors_digest": inspectors_digest.hex(),
        "seed": seed.hex(),
        "ranks": {k: f"{r:016x}" for k, r in ranks.items()},
        "strata": strata,
        "inspections": inspections,
        "excluded_pairs": sorted(ref.pair_hash(seed, w, e) for w, e in teams.consulted_hits),
        "inspections_digest": hashlib.sha256(entries).hexdigest(),
        "audit_head": f"inspectbot/disclosure/v2\taudit\t{EXAMPLE_REF}\t{SALT_KEY.hex()}",
        "entity_line": f"inspectbot/disclosure/v2\tentity\t{EXAMPLE_REF}\t{SINGLE}\t{stratum_of[SINGLE]}\t"
        f"{salts[SINGLE].hex()}",
    }


def markdown() -> str:
    """The example as docs/draw-protocol.md §15.10 shows it."""
    v = vectors()
    out = [
        "Inputs: those of §13 (secret, beacon, `draw_ref`, ratios, team, units, exclusions, `inspectors.tsv`,",
        "the pool's keys, classes and divisions), and",
        "",
        "```",
        f"salt_key = {SALT_KEY.hex()}   (hex)",
        "```",
        "",
        "Per entity: its class (confidential), its salt `salt_e`, its class commitment (the second field of",
        "`pool.tsv`) and its rank:",
        "",
        "```",
    ]
    for k, s, _ in EXAMPLE_POOL:
        out.append(f"{k}  {s}  salt_e      {v['salts'][k]}")
        out.append(f"{' ' * len(k)}     commitment  {v['commitments'][k]}")
        out.append(f"{' ' * len(k)}     r(e)        {v['ranks'][k]}")
    out += [
        "```",
        "",
        "Derived (`commitment` and `inspectors_digest` are those of §13):",
        "",
        "```",
        f"pool_digest       {v['pool_digest']}",
        f"inspectors_digest {v['inspectors_digest']}",
        f"seed              {v['seed']}",
        "```",
        "",
        "Strata, with the last drawn rank, the first rank not drawn, and the cut:",
        "",
        "```",
    ]
    for label, t in v["strata"].items():
        last = f"{t['last']:016x}" if t["last"] is not None else "-"
        following = f"{t['next']:016x}" if t["next"] is not None else "-"
        out.append(
            f"{label}  pool {t['pool']}  ratio {t['ratio']:<3}  drawn {t['drawn']}  "
            f"last {last:<16}  next {following:<16}  cut {t['cut'] or 'null'}"
        )
    out += [
        "```",
        "",
        "The inspections (draw.json lists no stratum):",
        "",
        "| no | entity | rank | division | team |",
        "|---|---|---|---|---|",
    ]
    for i in v["inspections"]:
        out.append(f"| {i['no']} | {i['entity']} | {i['rank']} | {i['division']} | {', '.join(i['team'])} |")
    out += [
        "",
        "```",
        f"excluded_pairs     = {json.dumps(v['excluded_pairs'])}",
        'notes              = [{"code":"stratum_without_ratio","pool":1,"stratum":"C"}]',
        f"inspections_digest = {v['inspections_digest']}",
        "```",
        "",
        "`strata` in draw.json:",
        "",
        "```",
        json.dumps(
            {k: {f: t[f] for f in ("cut", "drawn", "pool", "ratio")} for k, t in v["strata"].items()},
            sort_keys=True,
            separators=(",", ":"),
        ),
        "```",
        "",
        "The audit disclosure is its header line and then the ten lines of §13's `pool.tsv`:",
        "",
        "```",
        v["audit_head"].replace("\t", " TAB "),
        "```",
        "",
        f"and the entity {SINGLE}'s own disclosure is the one line",
        "",
        "```",
        v["entity_line"].replace("\t", " TAB "),
        "```",
        "",
        f"with which it checks: its commitment opens; its class {dict((k, s) for k, s, _ in EXAMPLE_POOL)[SINGLE]} "
        f"has cut {v['strata'][dict((k, s) for k, s, _ in EXAMPLE_POOL)[SINGLE]]['cut']}; its rank "
        f"{v['ranks'][SINGLE]} is above it, so it must not be listed — and it is not.",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
