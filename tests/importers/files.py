"""Builders of small import files (CSV in any encoding, XLSX) and valid sample rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from stdnum.cn import uscc

ENTITY_HEADER = [
    "统一社会信用代码",
    "名称",
    "主体类型",
    "行政区划代码",
    "住所",
    "行业",
    "信用风险等级",
    "联系电话",
    "纬度",
    "经度",
]
ENTITY_HEADER_EN = [
    "credit_code",
    "name",
    "kind",
    "division_code",
    "address",
    "industry",
    "risk_class",
    "phone",
    "lat",
    "lon",
]


def credit_code(serial: int, prefix: str = "91370202MA") -> str:
    """A valid credit code: 17 characters plus the check character python-stdnum computes."""
    body = f"{prefix}{serial:07d}"
    return body + uscc.calc_check_digit(body)


def wrong_check(code: str) -> str:
    """The same code with a wrong check character."""
    good = code[-1]
    return code[:-1] + ("1" if good != "1" else "2")


def entity(serial: int, **changes) -> dict[str, str]:
    row = {
        "统一社会信用代码": credit_code(serial),
        "名称": f"青岛测试{serial}号商贸有限公司",
        "主体类型": "企业",
        "行政区划代码": "370202001",
        "住所": f"山东省青岛市市南区香港中路{serial}号",
        "行业": "批发和零售业",
        "信用风险等级": "B",
        "联系电话": f"138{serial:08d}",
        "纬度": "36.066",
        "经度": "120.383",
    }
    row.update(changes)
    return row


def csv_bytes(header: list[str], rows: list, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    out = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    out.writerow(header)
    for row in rows:
        out.writerow([row.get(h, "") for h in header] if isinstance(row, dict) else row)
    return buffer.getvalue().encode(encoding)


def write_csv(path: Path, header: list[str], rows: list, encoding: str = "utf-8", delimiter: str = ",") -> Path:
    path.write_bytes(csv_bytes(header, rows, encoding, delimiter))
    return path


def write_xlsx(path: Path, header: list[str], rows: list[list]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


DEPARTMENT_HEADER = ["部门编码", "部门名称", "层级", "行政区划代码"]
DEPARTMENTS = [
    ["370200SCJG", "青岛市市场监督管理局", "市级", "370200"],
    ["370200YJGL", "青岛市应急管理局", "市级", "370200"],
]
ITEM_HEADER = ["事项编码", "事项名称", "部门", "法律依据", "检查对象类型", "检查方式", "执法资质"]
ITEMS = [
    [
        "SCJG-001",
        "食品经营者经营活动检查",
        "青岛市市场监督管理局",
        "《食品安全法》第一百一十条",
        "企业",
        "现场检查",
        "SC-SP",
    ],
    [
        "YJGL-001",
        "安全生产检查",
        "370200YJGL",
        "《安全生产法》第六十五条",
        "企业、事业单位",
        "现场检查",
        "EM-AQ，EM-WH",
    ],
]
INSPECTOR_HEADER = [
    "执法证号",
    "姓名",
    "部门",
    "执法单位",
    "单位行政区划代码",
    "执法资质",
    "业务专长",
    "手机号",
    "证件有效期",
    "状态",
]


def inspector(serial: int, **changes) -> dict[str, str]:
    row = {
        "执法证号": f"3702{serial:08d}",
        "姓名": f"张{serial}",
        "部门": "青岛市市场监督管理局",
        "执法单位": "青岛市市场监督管理局执法支队",
        "单位行政区划代码": "370200",
        "执法资质": "SC-SP、SC-TS",
        "业务专长": "食品安全",
        "手机号": f"139{serial:08d}",
        "证件有效期": "2029-12-31",
        "状态": "在岗",
    }
    row.update(changes)
    return row
