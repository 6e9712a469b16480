"""Row and field validators: precise reasons, normalised values, and no crash on any text."""

import datetime as dt

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importers import validate as v
from importers.errors import Invalid, RowInvalid

from .files import credit_code, wrong_check


def reason(check, *args, **kwargs) -> tuple[str, dict]:
    with pytest.raises(Invalid) as caught:
        check(*args, **kwargs)
    return caught.value.code, caught.value.params


# --- credit codes -------------------------------------------------------------------------------


def test_valid_credit_code_is_normalised():
    code = credit_code(42)
    assert v.uscc(f" {code.lower()} ") == code
    assert v.uscc("91110000600037341L") == "91110000600037341L"


def test_wrong_check_character_names_the_expected_one():
    code = credit_code(42)
    assert reason(v.uscc, wrong_check(code)) == ("import_uscc_checksum", {"expected": code[-1]})


@pytest.mark.parametrize(
    "value, code",
    [
        ("9137020", "import_uscc_length"),
        ("A1110000600037341L", "import_uscc_format"),
        ("91110000600037341I", "import_uscc_format"),
        ("", "import_required"),
    ],
)
def test_malformed_credit_codes(value, code):
    assert reason(v.uscc, value)[0] == code


# --- phones -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, e164",
    [
        ("13812345678", "+8613812345678"),
        ("138 1234 5678", "+8613812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("0532-88886666", "+8653288886666"),
        ("", None),
    ],
)
def test_phone_numbers_become_e164(value, e164):
    assert v.phone(value, mobile_only=False) == e164


@pytest.mark.parametrize("value", ["12345", "1381234567", "138123456789", "abc", "+1 555"])
def test_bad_phone_numbers(value):
    assert reason(v.phone, value, mobile_only=False)[0] == "import_phone_invalid"


def test_inspectors_need_a_mobile_not_a_landline():
    assert reason(v.phone, "0532-88886666", mobile_only=True)[0] == "import_phone_not_mobile"


def _library_only(value: str, mobile_only: bool):
    """The number as phonenumbers alone decides it (no fast path)."""
    try:
        number = phonenumbers.parse(value, "CN")
    except phonenumbers.NumberParseException:
        return "invalid"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    if mobile_only and phonenumbers.number_type(number) not in v._MOBILE_TYPES:
        return "not mobile"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@settings(max_examples=500)
@given(st.text(alphabet="0123456789", min_size=10, max_size=10), st.booleans())
def test_fast_path_for_mobiles_agrees_with_phonenumbers(rest, mobile_only):
    value = "1" + rest
    try:
        ours = v.phone(value, mobile_only=mobile_only)
    except Invalid as problem:
        ours = {"import_phone_invalid": "invalid", "import_phone_not_mobile": "not mobile"}[problem.code]
    assert ours == _library_only(value, mobile_only)


# --- other fields -------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("A", "A"), (" b ", "B"), ("C类", "C"), ("D级", "D"), ("e", "E")])
def test_risk_classes(value, expected):
    assert v.risk_class(value) == expected


@pytest.mark.parametrize("value", ["F", "AB", "1", "优"])
def test_risk_class_outside_a_to_e(value):
    assert reason(v.risk_class, value)[0] == "import_risk_class"


@pytest.mark.parametrize(
    "value, expected", [("370202", "370202"), ("370202001", "370202001"), ("370202001000", "370202001")]
)
def test_division_codes(value, expected):
    assert v.division_code(value) == expected


@pytest.mark.parametrize("value", ["37020", "3702020", "37020200", "000000", "37O202", "370202001001"])
def test_bad_division_codes(value):
    assert reason(v.division_code, value)[0] == "import_division_code"


@pytest.mark.parametrize(
    "value, prefix",
    [
        ("370200", "3702"),
        ("370202", "370202"),
        ("370000", "37"),
        ("370202001", "370202001"),
        ("370202000000", "370202"),
    ],
)
def test_jurisdiction_strips_trailing_zero_pairs(value, prefix):
    assert v.jurisdiction(value) == prefix


@pytest.mark.parametrize(
    "value",
    [
        "2027-12-31",
        "2027/12/31",
        "2027.12.31",
        "20271231",
        "2027年12月31日",
        "2022-01-01至2027-12-31",
        "2027-12-31 00:00:00",
    ],
)
def test_dates(value):
    assert v.date(value) == dt.date(2027, 12, 31)


def test_bad_date():
    assert reason(v.date, "2027-13-01")[0] == "import_date"


@pytest.mark.parametrize(
    "label, kind",
    [
        ("企业", "enterprise"),
        ("个体工商户", "enterprise"),
        ("事业单位", "institution"),
        ("社会组织", "social_org"),
        ("法律服务机构", "legal_service"),
        ("Legal_Service", "legal_service"),
        ("social-org", "social_org"),
    ],
)
def test_entity_kinds_in_chinese_and_as_enum_values(label, kind):
    assert v.entity_kind(label) == kind


def test_code_lists_take_every_separator_and_sort():
    assert v.code_list("SC-TS, SC-SP，EM-AQ;EM-WH；ED-BX、SC-SP,") == ("ED-BX", "EM-AQ", "EM-WH", "SC-SP", "SC-TS")
    assert reason(v.code_list, "SC SP")[0] == "import_bad_code"


def test_text_is_kept_exactly_but_control_characters_are_refused():
    name = "<b>青岛“海风”</b>&amp; '餐饮' \"有限公司\""
    assert v.text(f"  {name} ", max_len=255) == name
    assert reason(v.text, "a\x00b", max_len=10)[0] == "import_control_chars"
    assert reason(v.text, "x" * 11, max_len=10) == ("import_too_long", {"max_len": 10, "length": 11})


def test_inspector_status_labels():
    assert [v.inspector_status(s) for s in ("在岗", "休假", "退休", "", "on_leave")] == [
        "active",
        "on_leave",
        "retired",
        "active",
        "on_leave",
    ]


# --- whole rows ---------------------------------------------------------------------------------


def test_entity_row_reports_every_bad_value():
    cells = {
        "uscc": wrong_check(credit_code(1)),
        "name": "",
        "kind": "企业",
        "division_code": "370202",
        "risk_class": "F",
        "phone": "12345",
        "lat": "36.1",
        "lon": "120.3",
    }
    with pytest.raises(RowInvalid) as caught:
        v.validate_entity(cells)
    assert {(f, p.code) for f, p in caught.value.errors} == {
        ("uscc", "import_uscc_checksum"),
        ("name", "import_required"),
        ("risk_class", "import_risk_class"),
        ("phone", "import_phone_invalid"),
    }


def test_entity_row_needs_both_coordinates():
    cells = {
        "uscc": credit_code(1),
        "name": "x",
        "kind": "企业",
        "division_code": "370202",
        "risk_class": "A",
        "lat": "36.1",
    }
    with pytest.raises(RowInvalid) as caught:
        v.validate_entity(cells)
    assert [(f, p.code) for f, p in caught.value.errors] == [("lon", "import_coordinates_pair")]


def test_swapped_coordinates_are_caught():
    cells = {
        "uscc": credit_code(1),
        "name": "x",
        "kind": "企业",
        "division_code": "370202",
        "risk_class": "A",
        "lat": "120.38",
        "lon": "36.06",
    }
    with pytest.raises(RowInvalid) as caught:
        v.validate_entity(cells)
    assert {p.code for _, p in caught.value.errors} == {"import_lat_range", "import_lon_range"}


DEPARTMENTS = v.Departments.of([(1, "370200SCJG", "青岛市市场监督管理局"), (2, "A", "同名局"), (3, "B", "同名局")])


def test_departments_resolve_by_code_or_unique_name():
    assert DEPARTMENTS.resolve("370200SCJG") == 1
    assert DEPARTMENTS.resolve("青岛市市场监督管理局") == 1
    assert reason(DEPARTMENTS.resolve, "同名局")[0] == "import_department_ambiguous"
    assert reason(DEPARTMENTS.resolve, "不存在")[0] == "import_department_unknown"


def test_department_name_and_code_must_agree():
    cells = {
        "cert_no": "1",
        "name": "张三",
        "department": "青岛市市场监督管理局",
        "department_code": "A",
        "unit": "支队",
        "unit_division": "370200",
    }
    with pytest.raises(RowInvalid) as caught:
        v.validate_inspector(cells, DEPARTMENTS)
    assert [(f, p.code) for f, p in caught.value.errors] == [("department", "import_department_mismatch")]


def test_inspector_record():
    cells = {
        "cert_no": "37020001",
        "name": "张三",
        "department_code": "370200SCJG",
        "unit": "市南分局",
        "unit_division": "370202",
        "qualifications": "SC-TS、SC-SP",
        "mobile": "13912345678",
        "cert_expiry": "2029/1/5",
        "status": "休假",
    }
    assert v.validate_inspector(cells, DEPARTMENTS) == (
        "37020001",
        "张三",
        1,
        ("市南分局", "370202"),
        ("SC-SP", "SC-TS"),
        "",
        "+8613912345678",
        dt.date(2029, 1, 5),
        "on_leave",
        None,
    )


def _inspector_with_wecom(userid: str) -> dict[str, str]:
    return {
        "cert_no": "37020001",
        "name": "张三",
        "department_code": "370200SCJG",
        "unit": "市南分局",
        "unit_division": "370202",
        "wecom_userid": userid,
    }


@pytest.mark.parametrize("userid", ["zhangsan", "Zhang.San-01@x", "u" * 64, "ZhangSan", "9lives"])
def test_inspector_wecom_userid(userid):
    assert v.validate_inspector(_inspector_with_wecom(f" {userid} "), DEPARTMENTS)[-1] == userid


@pytest.mark.parametrize(
    ("userid", "code"),
    [
        *((u, "import_wecom_userid") for u in ["u" * 65, "张三", "a b", "a|b", "a\nb"]),
        # WeCom's user/create: "第一个字符必须是数字或字母" — a userid that does not is nobody's
        *((u, "import_wecom_userid_start") for u in ["_zhang", "-zhang", ".zhang", "@zhang", "_"]),
    ],
)
def test_inspector_wecom_userid_refused(userid, code):
    with pytest.raises(RowInvalid) as caught:
        v.validate_inspector(_inspector_with_wecom(userid), DEPARTMENTS)
    assert [(f, p.code) for f, p in caught.value.errors] == [("wecom_userid", code)]


FIELDS = {
    kind: sorted(
        {f for f in fields}
        | {"department", "department_code", "unit", "unit_division", "phone", "mobile", "target_kinds"}
    )
    for kind, fields in v.RECORDS.items()
}


@settings(max_examples=200)
@given(st.sampled_from(sorted(v.VALIDATORS)), st.data())
def test_any_text_gives_a_record_or_named_problems(kind, data):
    cells = data.draw(st.dictionaries(st.sampled_from(FIELDS[kind]), st.text(max_size=40)))
    try:
        record = v.VALIDATORS[kind](cells, DEPARTMENTS)
    except RowInvalid as bad:
        assert bad.errors and all(isinstance(p, Invalid) and p.code.startswith("import_") for _, p in bad.errors)
    else:
        assert len(record) == len(v.RECORDS[kind])


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from("0123456789ABCDEFGHJKLMNPQRTUWXYIOZSV -"), max_size=22))
def test_credit_code_validation_never_crashes(value):
    try:
        assert len(v.uscc(value)) == 18
    except Invalid as problem:
        assert problem.code.startswith("import_")


_ALNUM = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@settings(max_examples=300)
@given(
    st.text(alphabet="0123456789", min_size=8, max_size=8),
    st.text(alphabet=_ALNUM, min_size=9, max_size=9),
    st.sampled_from(_ALNUM + "?"),
    st.booleans(),
)
def test_fast_credit_code_check_agrees_with_stdnum(head, tail, check, use_stdnum_check):
    from stdnum.cn import uscc as stdnum_uscc

    body = head + tail
    code = body + (stdnum_uscc.calc_check_digit(body) if use_stdnum_check else check)
    try:
        accepted = v.uscc(code) == code
    except Invalid:
        accepted = False
    assert accepted == stdnum_uscc.is_valid(code)
