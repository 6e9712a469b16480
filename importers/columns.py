"""Which header means which field, per file kind, in Chinese (as regulators export) and English.

Matching ignores surrounding spaces, a BOM, a required-marker star (``名称*``) and, for English,
case and the difference between spaces, hyphens and underscores (``Credit code`` =
``credit_code``). Empty header cells are ignored; any other header we do not know is an error,
because a silently dropped column is lost data. The README's table lists the canonical names
(the first of each tuple); a test keeps it in step with this file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from importers.errors import FileProblem, column_letter

KINDS = ("departments", "items", "entities", "inspectors")


@dataclass(frozen=True)
class Column:
    field: str
    zh: tuple[str, ...]  # the first is the canonical header we write
    en: tuple[str, ...]
    required: bool = False


COLUMNS: dict[str, tuple[Column, ...]] = {
    "entities": (
        Column(
            "uscc",
            ("统一社会信用代码", "信用代码", "社会信用代码"),
            ("credit_code", "uscc", "unified_social_credit_code"),
            True,
        ),
        Column("name", ("名称", "主体名称", "企业名称", "单位名称"), ("name", "entity_name"), True),
        Column("kind", ("主体类型", "类型", "主体类别"), ("kind", "entity_kind", "entity_type"), True),
        Column("division_code", ("行政区划代码", "区划代码", "所属区划代码"), ("division_code", "division"), True),
        Column("address", ("住所", "地址", "经营场所", "住所（经营场所）"), ("address",)),
        Column("industry", ("行业", "所属行业", "行业门类"), ("industry",)),
        Column(
            "risk_class",
            ("信用风险等级", "风险等级", "信用风险分类"),
            ("risk_class", "credit_risk_class", "risk"),
            True,
        ),
        Column("phone", ("联系电话", "电话", "手机号"), ("phone", "mobile", "contact_phone")),
        Column("lat", ("纬度",), ("lat", "latitude")),
        Column("lon", ("经度",), ("lon", "lng", "longitude")),
    ),
    "inspectors": (
        Column(
            "cert_no",
            ("执法证号", "执法证件号", "执法证件号码"),
            ("cert_no", "certificate_no", "certificate_number"),
            True,
        ),
        Column("name", ("姓名",), ("name",), True),
        Column("department", ("部门", "所属部门", "部门名称"), ("department", "department_name")),
        Column("department_code", ("部门编码", "部门代码"), ("department_code",)),
        Column("unit", ("执法单位", "所属单位", "单位名称"), ("unit", "unit_name"), True),
        Column("unit_division", ("单位行政区划代码", "单位区划代码"), ("unit_division_code", "unit_division"), True),
        Column("qualifications", ("执法资质", "资质"), ("qualifications", "qualification_codes")),
        Column("expertise", ("业务专长", "专长"), ("expertise",)),
        Column("mobile", ("手机号", "手机号码", "手机"), ("mobile", "mobile_phone")),
        Column(
            "cert_expiry",
            ("证件有效期", "执法证有效期", "有效期至"),
            ("cert_expiry", "certificate_expiry", "valid_until"),
        ),
        Column("status", ("状态", "人员状态", "在岗状态"), ("status",)),
        Column("wecom_userid", ("企业微信账号", "企业微信ID", "企业微信UserID"), ("wecom_userid", "wecom_user_id")),
    ),
    "items": (
        Column("code", ("事项编码", "事项代码"), ("item_code", "code"), True),
        Column("name", ("事项名称",), ("item_name", "name"), True),
        Column("department", ("部门", "实施部门", "部门名称"), ("department", "department_name")),
        Column("department_code", ("部门编码", "部门代码"), ("department_code",)),
        Column("legal_basis", ("法律依据", "检查依据"), ("legal_basis",)),
        Column("target_kinds", ("检查对象类型", "检查对象"), ("target_kinds", "targets")),
        Column("method", ("检查方式",), ("method", "inspection_method")),
        Column("qualifications", ("执法资质", "资质要求"), ("qualifications", "qualification_codes")),
    ),
    # Credit-risk indicator values, one observation a row (importers/indicators.py).
    "indicators": (
        Column(
            "uscc",
            ("统一社会信用代码", "信用代码", "社会信用代码"),
            ("credit_code", "uscc", "unified_social_credit_code"),
            True,
        ),
        Column("indicator", ("指标", "指标编码", "指标名称"), ("indicator", "indicator_code"), True),
        Column("value", ("指标值", "数值", "值"), ("value",), True),
        Column("observed_on", ("采集日期", "数据日期", "统计日期"), ("observed_on", "date"), True),
    ),
    "departments": (
        Column("code", ("部门编码", "部门代码"), ("department_code", "code"), True),
        Column("name", ("部门名称", "名称"), ("department_name", "name"), True),
        Column("level", ("层级", "部门层级"), ("level",)),
        Column("division_code", ("行政区划代码", "区划代码"), ("division_code", "division")),
    ),
}

# A file must have at least one of each group (department by name or by code).
ONE_OF: dict[str, tuple[tuple[str, ...], ...]] = {
    "inspectors": (("department", "department_code"),),
    "items": (("department", "department_code"),),
}

_STRIP = re.compile(r"^[\s\ufeff\u3000]+|[\s\u3000*＊]+$")
_SEPARATORS = re.compile(r"[\s\-]+")


def normalise_header(header: str) -> str:
    """The lookup form of a header: trimmed, unstarred, lower case, separators as ``_``."""
    return _SEPARATORS.sub("_", _STRIP.sub("", header)).lower()


def _lookup(kind: str) -> dict[str, Column]:
    table: dict[str, Column] = {}
    for column in COLUMNS[kind]:
        for name in column.zh + column.en:
            table[normalise_header(name)] = column
    return table


_LOOKUPS = {kind: _lookup(kind) for kind in COLUMNS}


class HeaderInvalid(Exception):
    """The header row cannot be used; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[FileProblem]) -> None:
        super().__init__(", ".join(p.code for p in problems))
        self.problems = problems


def map_header(kind: str, header: list[str], optional: frozenset[str] = frozenset()) -> dict[str, int]:
    """``{field: column index}`` for a file's header row, or :class:`HeaderInvalid` with all problems.
    ``optional``: required columns this file may leave out (the entities' 信用风险等级 once the risk
    engine computes the classes)."""
    lookup = _LOOKUPS[kind]
    found: dict[str, int] = {}
    problems: list[FileProblem] = []
    for index, raw in enumerate(header):
        key = normalise_header(raw)
        if not key:
            continue
        column = lookup.get(key)
        if column is None:
            problems.append(
                FileProblem(
                    "import_unknown_header",
                    column=column_letter(index),
                    header=raw,
                    allowed_zh=[c.zh[0] for c in COLUMNS[kind]],
                    allowed_en=[c.en[0] for c in COLUMNS[kind]],
                )
            )
        elif column.field in found:
            first = found[column.field]
            problems.append(
                FileProblem(
                    "import_duplicate_header",
                    column=column_letter(index),
                    header=raw,
                    first_column=column_letter(first),
                    first_header=header[first],
                )
            )
        else:
            found[column.field] = index
    for column in COLUMNS[kind]:
        if column.required and column.field not in found and column.field not in optional:
            problems.append(FileProblem("import_missing_column", zh=column.zh[0], en=column.en[0]))
    for group in ONE_OF.get(kind, ()):
        if not any(f in found for f in group):
            columns = [c for c in COLUMNS[kind] if c.field in group]
            problems.append(
                FileProblem(
                    "import_missing_one_of",
                    zh=[c.zh[0] for c in columns],
                    en=[c.en[0] for c in columns],
                )
            )
    if problems:
        raise HeaderInvalid(problems)
    return found


def canonical_header(kind: str, locale: str = "zh-CN") -> list[str]:
    """The header we write (generated city, templates): canonical Chinese or English names."""
    return [c.zh[0] if locale == "zh-CN" else c.en[0] for c in COLUMNS[kind]]
