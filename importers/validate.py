"""Validation of one row of a directory file: raw strings in, a normalised record out.

Each field validator takes the cell's text and returns the value to store, or raises
:class:`Invalid` with a text code (the words are in ``templates/<locale>/texts/import.j2``).
Each row validator runs all its field validators, so one pass over a file reports every bad
value, and returns the record as a tuple in the target table's column order (see ``RECORDS``).
Validators never touch the database; what they need from it (departments) is passed in.

Credit codes are checked with python-stdnum, phone numbers with phonenumbers (CN region).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidChecksum, InvalidLength, ValidationError

from domain.plans import KIND_ALIASES
from importers.errors import Invalid, RowInvalid

# Column order of each kind's record (the database columns it fills, key first).
RECORDS = {
    "entities": ("uscc", "name", "kind", "division_code", "address", "industry", "risk_class", "mobile", "lat", "lon"),
    "inspectors": (
        "cert_no",
        "name",
        "department_id",
        "unit",
        "qualifications",
        "expertise",
        "mobile",
        "cert_expiry",
        "status",
        "wecom_userid",
    ),
    "items": ("code", "name", "department_id", "legal_basis", "target_kinds", "method", "qualifications"),
    "departments": ("code", "name", "level", "division_code"),
}

ENTITY_KINDS = KIND_ALIASES  # the same words a plan file accepts
KIND_ORDER = ("enterprise", "institution", "social_org", "legal_service")
LEVELS = {
    **dict.fromkeys(("市级", "市", "city"), "city"),
    **dict.fromkeys(("区级", "县级", "区县级", "区（市）级", "区(市)级", "district", "county"), "district"),
    **dict.fromkeys(("镇级", "乡镇", "乡镇级", "街道", "town"), "town"),
}
INSPECTOR_STATUSES = {
    **dict.fromkeys(("在岗", "在职", "正常", "active"), "active"),
    **dict.fromkeys(("休假", "请假", "病假", "产假", "离岗", "暂停", "on_leave", "on leave", "leave"), "on_leave"),
    **dict.fromkeys(("退休", "离职", "调离", "注销", "retired"), "retired"),
}
RISK_CLASSES = frozenset("ABCDE")

# China's bounding box: catches swapped latitude/longitude and stray zeros.
LAT_RANGE = (3.5, 53.6)
LON_RANGE = (73.4, 135.1)

LIST_SEPARATORS = re.compile(r"[,，;；、]")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_KEY = re.compile(r"[^\s\x00-\x1f\x7f\ud800-\udfff]{1,32}")
_DIGITS = re.compile(r"[0-9]+")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日")
_DATE_RANGE = re.compile(r"\s*(?:至|~|～|—)\s*")

# python-stdnum's uscc.validate costs ~13 µs a code (two passes of its generic cleaner), a
# seventh of the import's time budget at a million rows. The same GB 32100 check on a code that
# is already compact takes ~2 µs; tests/importers check both agree, and stdnum stays the
# judge of every code that fails the fast check.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_COMPACT = re.compile(r"[0-9]{8}[0-9A-HJ-NPQRTUWXY]{10}")


def _uscc_check(code: str) -> str:
    values = _USCC_VALUES
    total = sum([values[c] * w for c, w in zip(code, _USCC_WEIGHTS)])
    return _USCC_ALPHABET[(31 - total % 31) % 31]


# phonenumbers costs ~25 µs a number; an 11-digit mainland mobile is decided by the library's
# own CN mobile pattern in ~1 µs (tests/importers check both paths agree).
_CN_MOBILE = re.compile(PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern)
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


# --- field validators ----------------------------------------------------------------------------


def text(value: str, *, max_len: int, required: bool = False) -> str:
    """Free text, stored exactly as given (markup and full-width quotes included), trimmed."""
    value = value.strip()
    if not value:
        if required:
            raise Invalid("import_required")
        return ""
    if _BAD_CHARS.search(value):
        raise Invalid("import_control_chars")
    if len(value) > max_len:
        raise Invalid("import_too_long", max_len=max_len, length=len(value))
    return value


def key(value: str) -> str:
    """An identifier such as a certificate number or item code: 1–32 characters, no spaces."""
    value = value.strip()
    if not value:
        raise Invalid("import_required")
    if not _KEY.fullmatch(value):
        raise Invalid("import_bad_key")
    return value


def uscc(value: str) -> str:
    """A unified social credit code, checked (length, alphabet, check character) by python-stdnum.

    A code already in compact form with a correct check character is accepted after the fast
    check below; everything else goes through python-stdnum, which also names the problem.
    """
    if len(value) == 18 and _USCC_COMPACT.fullmatch(value) and _uscc_check(value) == value[17]:
        return value
    if not value.strip():
        raise Invalid("import_required")
    try:
        return stdnum_uscc.validate(value)
    except InvalidLength:
        raise Invalid("import_uscc_length", length=len(stdnum_uscc.compact(value))) from None
    except InvalidChecksum:
        expected = stdnum_uscc.calc_check_digit(stdnum_uscc.compact(value)[:17])
        raise Invalid("import_uscc_checksum", expected=expected) from None
    except ValidationError:
        raise Invalid("import_uscc_format") from None


def phone(value: str, *, mobile_only: bool) -> str | None:
    """A Chinese phone number as E.164 (``+8613812345678``), or None when the cell is empty."""
    value = value.strip()
    if not value:
        return None
    if len(value) == 11 and value[0] == "1" and _CN_MOBILE.fullmatch(value):
        return "+86" + value
    try:
        number = phonenumbers.parse(value, "CN")
    except phonenumbers.NumberParseException:
        raise Invalid("import_phone_invalid") from None
    if not phonenumbers.is_valid_number(number):
        raise Invalid("import_phone_invalid")
    if mobile_only and phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise Invalid("import_phone_not_mobile")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def division_code(value: str) -> str:
    """A county (6-digit) or town (9-digit) administrative-division code; 12-digit ``…000`` = town."""
    value = value.strip()
    if not value:
        raise Invalid("import_required")
    if len(value) == 12 and value.endswith("000"):
        value = value[:9]
    if len(value) not in (6, 9) or not _DIGITS.fullmatch(value) or value.startswith("00"):
        raise Invalid("import_division_code")
    return value


def jurisdiction(value: str) -> str:
    """The division prefix a unit covers: 370200 → ``3702`` (the city), 370202 → ``370202``."""
    code = division_code(value)
    if len(code) == 9 and code.endswith("000"):
        code = code[:6]
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def risk_class(value: str) -> str:
    """Credit-risk class A–E (``b``, ``B类`` and ``B级`` are accepted as B)."""
    value = value.strip().upper().removesuffix("类").removesuffix("级")
    if not value:
        raise Invalid("import_required")
    if value not in RISK_CLASSES:
        raise Invalid("import_risk_class")
    return value


def computed_risk_class(value: str) -> None:
    """With a risk model in force the engine computes the classes: a value here is refused, not read."""
    if value.strip():
        raise Invalid("import_risk_class_computed")
    return None


def _choice(value: str, table: Mapping[str, str], code: str, *, default: str | None = None) -> str:
    value = value.strip()
    if not value:
        if default is None:
            raise Invalid("import_required")
        return default
    found = table.get(value) or table.get(value.lower().replace("-", "_"))
    if found is None:
        raise Invalid(code)
    return found


def entity_kind(value: str) -> str:
    return _choice(value, ENTITY_KINDS, "import_entity_kind")


def level(value: str) -> str:
    return _choice(value, LEVELS, "import_level", default="city")


_WECOM_USERID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def wecom_userid(value: str) -> str | None:
    """A WeCom member's userid (成员UserID): 1-64 letters, digits and ``_-.@``, the first a letter
    or a digit (WeCom's user/create); empty = none. Kept as spelt (WeCom ignores its case)."""
    value = value.strip()
    if not value:
        return None
    if not _WECOM_USERID.match(value):
        raise Invalid("import_wecom_userid")
    if not value[0].isalnum():  # ASCII here: the pattern allowed nothing else
        raise Invalid("import_wecom_userid_start")
    return value


def inspector_status(value: str) -> str:
    return _choice(value, INSPECTOR_STATUSES, "import_inspector_status", default="active")


def date(value: str) -> dt.date | None:
    """A date as exports write it (2027-12-31, 2027/12/31, 20271231, 2027年12月31日; a range's end)."""
    value = value.strip()
    if not value:
        return None
    value = _DATE_RANGE.split(value)[-1].split(" ")[0]
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise Invalid("import_date")


def coordinate(value: str, bounds: tuple[float, float], code: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise Invalid("import_number") from None
    if not math.isfinite(number) or not bounds[0] <= number <= bounds[1]:
        raise Invalid(code, low=bounds[0], high=bounds[1])
    return number


def code_list(value: str) -> tuple[str, ...]:
    """Codes separated by , ， ; ； or 、 — deduplicated and sorted."""
    codes = set()
    for token in LIST_SEPARATORS.split(value):
        token = token.strip()
        if not token:
            continue
        if not _KEY.fullmatch(token):
            raise Invalid("import_bad_code", token=token)
        codes.add(token)
    return tuple(sorted(codes))


def kind_list(value: str) -> tuple[str, ...]:
    """Entity kinds, in their fixed order; empty means every kind."""
    kinds = set()
    for token in LIST_SEPARATORS.split(value):
        token = token.strip()
        if not token:
            continue
        found = ENTITY_KINDS.get(token) or ENTITY_KINDS.get(token.lower())
        if found is None:
            raise Invalid("import_entity_kind_in_list", token=token)
        kinds.add(found)
    return tuple(k for k in KIND_ORDER if k in kinds)


# --- references --------------------------------------------------------------------------------


@dataclass
class Departments:
    """The departments already in the database, to resolve a 部门 / 部门编码 cell to an id."""

    by_code: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows) -> Departments:
        """From ``(id, code, name)`` tuples."""
        found = cls()
        for id_, code, name in rows:
            found.by_code[code] = id_
            found.by_name.setdefault(name, []).append(id_)
        return found

    def resolve(self, value: str) -> int:
        """A department by code or, failing that, by its unique name."""
        value = value.strip()
        if value in self.by_code:
            return self.by_code[value]
        ids = self.by_name.get(value, [])
        if len(ids) > 1:
            raise Invalid("import_department_ambiguous")
        if not ids:
            raise Invalid("import_department_unknown")
        return ids[0]


# --- row validators ----------------------------------------------------------------------------

Errors = list[tuple[str, Invalid]]  # (field, problem)


def _fields(cells: Mapping[str, str], checks: tuple[tuple[str, Callable[[str], object]], ...]) -> tuple[list, Errors]:
    """Every check applied to its cell (absent cells are empty): the values, and every problem."""
    values: list = []
    errors: Errors = []
    for name, check in checks:
        try:
            values.append(check(cells.get(name, "")))
        except Invalid as problem:
            errors.append((name, problem))
            values.append(None)
    return values, errors


def optional_division_code(value: str) -> str:
    return division_code(value) if value.strip() else ""


ENTITY_CHECKS = (
    ("uscc", uscc),
    ("name", partial(text, max_len=255, required=True)),
    ("kind", entity_kind),
    ("division_code", division_code),
    ("address", partial(text, max_len=255)),
    ("industry", partial(text, max_len=64)),
    ("risk_class", risk_class),
    ("phone", partial(phone, mobile_only=False)),
    ("lat", partial(coordinate, bounds=LAT_RANGE, code="import_lat_range")),
    ("lon", partial(coordinate, bounds=LON_RANGE, code="import_lon_range")),
)
INSPECTOR_CHECKS = (
    ("cert_no", key),
    ("name", partial(text, max_len=64, required=True)),
    ("unit", partial(text, max_len=128, required=True)),
    ("unit_division", jurisdiction),
    ("qualifications", code_list),
    ("expertise", partial(text, max_len=255)),
    ("mobile", partial(phone, mobile_only=True)),
    ("cert_expiry", date),
    ("status", inspector_status),
    ("wecom_userid", wecom_userid),
)
ITEM_CHECKS = (
    ("code", key),
    ("name", partial(text, max_len=255, required=True)),
    ("legal_basis", partial(text, max_len=4000)),
    ("target_kinds", kind_list),
    ("method", partial(text, max_len=64)),
    ("qualifications", code_list),
)
DEPARTMENT_CHECKS = (
    ("code", key),
    ("name", partial(text, max_len=128, required=True)),
    ("level", level),
    ("division_code", optional_division_code),
)


ENTITY_CHECKS_COMPUTED = tuple((f, computed_risk_class if f == "risk_class" else c) for f, c in ENTITY_CHECKS)


def validate_entity(cells: Mapping[str, str], refs=None, *, computed: bool = False) -> tuple:
    """An entity. ``computed``: a risk model is in force, so 信用风险等级 must be empty (its value is
    None: the write keeps an existing entity's class and gives a new one C until it is classified)."""
    values, errors = _fields(cells, ENTITY_CHECKS_COMPUTED if computed else ENTITY_CHECKS)
    lat, lon = values[8], values[9]
    if (lat is None) != (lon is None) and not any(f in ("lat", "lon") for f, _ in errors):
        errors.append(("lat" if lat is None else "lon", Invalid("import_coordinates_pair")))
    if errors:
        raise RowInvalid(errors)
    return tuple(values)


def _department(cells: Mapping[str, str], refs: Departments, errors: Errors) -> int | None:
    """The department named by 部门 and/or 部门编码 (both given must agree); problems go to ``errors``."""
    found = {}
    for name in ("department_code", "department"):
        value = cells.get(name, "").strip()
        if value:
            try:
                found[name] = refs.resolve(value)
            except Invalid as problem:
                errors.append((name, problem))
    if not found and not any(f.startswith("department") for f, _ in errors):
        errors.append(("department" if "department" in cells else "department_code", Invalid("import_required")))
    if len(set(found.values())) > 1:
        errors.append(
            ("department", Invalid("import_department_mismatch", department_code=cells["department_code"].strip()))
        )
    return found.get("department_code", found.get("department"))


def validate_inspector(cells: Mapping[str, str], refs: Departments) -> tuple:
    """An inspector; its ``unit`` field is ``(unit name, jurisdiction prefix)``, resolved on write."""
    values, errors = _fields(cells, INSPECTOR_CHECKS)
    department_id = _department(cells, refs, errors)
    if errors:
        raise RowInvalid(errors)
    cert_no, name, unit, prefix, quals, expertise, mobile, expiry, status, userid = values
    return (cert_no, name, department_id, (unit, prefix), quals, expertise, mobile, expiry, status, userid)


def validate_item(cells: Mapping[str, str], refs: Departments) -> tuple:
    values, errors = _fields(cells, ITEM_CHECKS)
    department_id = _department(cells, refs, errors)
    if errors:
        raise RowInvalid(errors)
    code, name, legal_basis, kinds, method, quals = values
    return (code, name, department_id, legal_basis, kinds, method, quals)


def validate_department(cells: Mapping[str, str], refs=None) -> tuple:
    values, errors = _fields(cells, DEPARTMENT_CHECKS)
    if errors:
        raise RowInvalid(errors)
    return tuple(values)


VALIDATORS = {
    "entities": validate_entity,
    "inspectors": validate_inspector,
    "items": validate_item,
    "departments": validate_department,
}
