"""Reading files: encodings detected (never asked), CSV dialects, XLSX cells as typed text."""

import datetime as dt

import pytest

from importers.errors import FileProblem
from importers.read import cell_text, open_table, sniff_delimiter

from .files import ENTITY_HEADER, csv_bytes, entity, write_xlsx

ROWS = [entity(1, 名称="青岛“海风”餐饮有限公司"), entity(2)]


def read_all(path):
    table = open_table(path)
    try:
        return table.encoding, table.header, list(table.rows)
    finally:
        table.close()


@pytest.mark.parametrize(
    "encoding, detected",
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030"), ("utf-16", "utf-16")],
)
def test_each_encoding_reads_the_same_text(tmp_path, encoding, detected):
    path = tmp_path / "e.csv"
    path.write_bytes(csv_bytes(ENTITY_HEADER, ROWS, encoding))
    found, header, rows = read_all(path)
    assert found == detected
    assert header == ENTITY_HEADER
    assert [r[1][1] for r in rows] == ["青岛“海风”餐饮有限公司", "青岛测试2号商贸有限公司"]
    assert [r[0] for r in rows] == [2, 3]


def test_gbk_is_not_mistaken_for_utf8(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("名称\n市南区\n".encode("gbk"))
    assert read_all(path)[0] == "gb18030"


def test_undecodable_bytes_are_refused_with_their_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes("名称\n青岛\n".encode() + b"\xff\xfe\x80bad\n")
    with pytest.raises(FileProblem) as caught:
        open_table(path)
    assert caught.value.code == "import_undecodable"
    assert caught.value.params == {"row": 3}


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_is_refused(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(FileProblem) as caught:
        open_table(path)
    assert caught.value.code == "import_file_empty"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileProblem) as caught:
        open_table(tmp_path / "nope.csv")
    assert caught.value.code == "import_file_missing" and "nope.csv" in caught.value.params["path"]


def test_rows_keep_spreadsheet_numbers_across_blank_and_multiline_rows(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('名称,住所\nA,"第一行\n第二行"\n\nB,x\n', encoding="utf-8")
    _, _, rows = read_all(path)
    assert rows == [(2, ["A", "第一行\n第二行"]), (3, []), (4, ["B", "x"])]


@pytest.mark.parametrize("line, expected", [("a,b,c", ","), ("a\tb\tc", "\t"), ("a;b;c", ";"), ("名称", ",")])
def test_delimiter_is_sniffed_from_the_header(line, expected):
    assert sniff_delimiter(line) == expected


def test_tab_separated_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(csv_bytes(ENTITY_HEADER, ROWS, "utf-8", delimiter="\t"))
    assert read_all(path)[1] == ENTITY_HEADER


def test_xlsx_cells_become_the_text_a_user_typed(tmp_path):
    path = write_xlsx(
        tmp_path / "e.xlsx",
        ["行政区划代码", "联系电话", "证件有效期", "纬度"],
        [[370202, 13812345678, dt.datetime(2027, 12, 31), 36.5], [None, None, None, None]],
    )
    encoding, header, rows = read_all(path)
    assert encoding == "xlsx"
    assert rows[0] == (2, ["370202", "13812345678", "2027-12-31", "36.5"])


def test_damaged_xlsx_is_refused(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FileProblem) as caught:
        open_table(path)
    assert caught.value.code == "import_xlsx_unreadable"


@pytest.mark.parametrize(
    "value, text",
    [(None, ""), (True, "TRUE"), (12.0, "12"), (1.5, "1.5"), ("x", "x"), (dt.date(2027, 1, 2), "2027-01-02")],
)
def test_cell_text(value, text):
    assert cell_text(value) == text
