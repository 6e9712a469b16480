"""A generated city: realistic directory files in exactly the import format, Qingdao-like.

Ten real Qingdao county-level divisions (370202 市南区 … 370285 莱西市) with towns under them
(real names; the 9-digit town codes are numbered by us, not the official ones), ten municipal
departments with their inspection items and qualification codes, enforcement units at city and
district level, entities with valid credit codes (check character by python-stdnum), mainland
mobile numbers, coordinates inside Qingdao and the risk mix A 30 / B 40 / C 20 / D 7 / E 3 %.

Deterministic for a seed: each file has its own ``random.Random`` seeded from the seed and the
file's name, so the same arguments give byte-identical files. Fast at a million rows: Faker's
zh_CN word lists are read once and combined with the seeded generator; Faker is never called
per row.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from faker.providers.address.zh_CN import Provider as FakerAddress
from faker.providers.company.zh_CN import Provider as FakerCompany
from faker.providers.person.zh_CN import Provider as FakerPerson
from stdnum.cn import uscc as stdnum_uscc

from domain.risk.model import parse_model
from importers.columns import canonical_header
from services.risk import world

QINGDAO_ENTITIES = 1_081_742
QINGDAO_INSPECTORS = 26_520
CITY_CODE = "370200"
CITY_NAME = "青岛市"
ENCODING = "utf-8-sig"  # what Excel opens correctly; the importer reads it and plain UTF-8 alike
BATCH = 10_000


@dataclass(frozen=True)
class County:
    code: str
    name: str
    weight: int  # share of entities and of district-level inspectors
    lat: float
    lon: float
    spread: float  # degrees
    towns: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.name[:-1]


COUNTIES = (
    County(
        "370202",
        "市南区",
        8,
        36.066,
        120.383,
        0.018,
        (
            "八大峡街道",
            "云南路街道",
            "中山路街道",
            "江苏路街道",
            "八大关街道",
            "湛山街道",
            "香港中路街道",
            "八大湖街道",
            "金门路街道",
            "珠海路街道",
        ),
    ),
    County(
        "370203",
        "市北区",
        13,
        36.087,
        120.375,
        0.020,
        (
            "辽宁路街道",
            "延安路街道",
            "登州路街道",
            "宁夏路街道",
            "敦化路街道",
            "辽源路街道",
            "合肥路街道",
            "台东街道",
            "即墨路街道",
            "水清沟街道",
            "洛阳路街道",
            "兴隆路街道",
        ),
    ),
    County(
        "370211",
        "黄岛区",
        20,
        35.960,
        120.100,
        0.090,
        (
            "黄岛街道",
            "辛安街道",
            "薛家岛街道",
            "灵珠山街道",
            "长江路街道",
            "红石崖街道",
            "灵山卫街道",
            "隐珠街道",
            "珠海街道",
            "滨海街道",
            "王台镇",
            "泊里镇",
            "大场镇",
            "六汪镇",
        ),
    ),
    County(
        "370212",
        "崂山区",
        6,
        36.107,
        120.468,
        0.040,
        ("中韩街道", "沙子口街道", "王哥庄街道", "北宅街道", "金家岭街道"),
    ),
    County(
        "370213",
        "李沧区",
        8,
        36.145,
        120.432,
        0.020,
        (
            "振华路街道",
            "永清路街道",
            "永安路街道",
            "兴华路街道",
            "兴城路街道",
            "李村街道",
            "虎山路街道",
            "浮山路街道",
            "九水街道",
            "湘潭路街道",
            "楼山街道",
        ),
    ),
    County(
        "370214",
        "城阳区",
        12,
        36.307,
        120.396,
        0.040,
        ("城阳街道", "流亭街道", "夏庄街道", "惜福镇街道", "棘洪滩街道", "上马街道", "河套街道", "红岛街道"),
    ),
    County(
        "370215",
        "即墨区",
        12,
        36.389,
        120.447,
        0.080,
        (
            "通济街道",
            "环秀街道",
            "潮海街道",
            "北安街道",
            "龙山街道",
            "龙泉街道",
            "鳌山卫街道",
            "温泉街道",
            "蓝村镇",
            "灵山镇",
            "段泊岚镇",
            "移风店镇",
            "田横镇",
            "金口镇",
        ),
    ),
    County(
        "370281",
        "胶州市",
        9,
        36.264,
        120.033,
        0.070,
        (
            "阜安街道",
            "中云街道",
            "三里河街道",
            "九龙街道",
            "胶东街道",
            "胶北街道",
            "胶西街道",
            "胶莱街道",
            "李哥庄镇",
            "铺集镇",
            "洋河镇",
            "里岔镇",
        ),
    ),
    County(
        "370283",
        "平度市",
        7,
        36.777,
        119.960,
        0.110,
        (
            "东阁街道",
            "李园街道",
            "同和街道",
            "凤台街道",
            "白沙河街道",
            "古岘镇",
            "仁兆镇",
            "南村镇",
            "蓼兰镇",
            "崔家集镇",
            "明村镇",
            "田庄镇",
            "新河镇",
            "店子镇",
            "大泽山镇",
            "旧店镇",
            "云山镇",
        ),
    ),
    County(
        "370285",
        "莱西市",
        5,
        36.889,
        120.518,
        0.080,
        (
            "水集街道",
            "望城街道",
            "沽河街道",
            "姜山镇",
            "夏格庄镇",
            "院上镇",
            "日庄镇",
            "南墅镇",
            "河头店镇",
            "店埠镇",
            "马连庄镇",
        ),
    ),
)
# Qingdao's land area, roughly: generated points are clamped into it.
LAT_BOUNDS = (35.60, 37.10)
LON_BOUNDS = (119.50, 120.95)


@dataclass(frozen=True)
class ItemSpec:
    name: str
    qualifications: tuple[str, ...]
    targets: tuple[str, ...]  # Chinese entity-kind labels, as exports write them
    method: str
    legal_basis: str


@dataclass(frozen=True)
class DepartmentSpec:
    abbr: str
    name: str
    short: str
    weight: int  # share of inspectors
    qualifications: dict[str, str]  # code → expertise label
    items: tuple[ItemSpec, ...]

    @property
    def code(self) -> str:
        return f"{CITY_CODE}{self.abbr}"

    @property
    def full_name(self) -> str:
        return f"{CITY_NAME}{self.name}"


_E, _I, _S, _L = "企业", "事业单位", "社会组织", "法律服务机构"
DEPARTMENTS = (
    DepartmentSpec(
        "SCJG",
        "市场监督管理局",
        "市场监管",
        38,
        {
            "SC-SP": "食品安全",
            "SC-TS": "特种设备",
            "SC-ZL": "产品质量",
            "SC-JL": "计量",
            "SC-GG": "广告监测",
            "SC-DJ": "登记注册",
            "SC-YP": "药品流通",
            "SC-JG": "价格监督",
        },
        (
            ItemSpec(
                "食品经营者经营活动检查", ("SC-SP",), (_E,), "现场检查", "《中华人民共和国食品安全法》第一百一十条"
            ),
            ItemSpec(
                "食品生产企业生产活动检查",
                ("SC-SP",),
                (_E,),
                "现场检查",
                "《中华人民共和国食品安全法》第八十七条、第一百一十条",
            ),
            ItemSpec(
                "特种设备使用单位检查", ("SC-TS",), (_E, _I), "现场检查", "《中华人民共和国特种设备安全法》第五十七条"
            ),
            ItemSpec("工业产品质量监督抽查", ("SC-ZL",), (_E,), "抽样检验", "《中华人民共和国产品质量法》第十五条"),
            ItemSpec("计量器具使用检查", ("SC-JL",), (_E, _I), "现场检查", "《中华人民共和国计量法》第十八条"),
            ItemSpec("广告发布行为检查", ("SC-GG",), (_E,), "网络监测", "《中华人民共和国广告法》第四十九条"),
            ItemSpec("企业公示信息抽查", ("SC-DJ",), (_E,), "书面检查", "《企业信息公示暂行条例》第十四条"),
            ItemSpec("药品零售企业经营检查", ("SC-YP",), (_E,), "现场检查", "《中华人民共和国药品管理法》第九十九条"),
            ItemSpec("明码标价和价格行为检查", ("SC-JG",), (_E,), "现场检查", "《中华人民共和国价格法》第三十四条"),
        ),
    ),
    DepartmentSpec(
        "STHJ",
        "生态环境局",
        "生态环境",
        9,
        {
            "EE-PW": "排污许可",
            "EE-WF": "危险废物",
            "EE-HP": "环境影响评价",
            "EE-ZS": "噪声污染",
        },
        (
            ItemSpec("排污许可证执行情况检查", ("EE-PW",), (_E, _I), "现场检查", "《排污许可管理条例》第二十八条"),
            ItemSpec(
                "危险废物规范化环境管理检查",
                ("EE-WF",),
                (_E, _I),
                "现场检查",
                "《中华人民共和国固体废物污染环境防治法》第二十九条",
            ),
            ItemSpec(
                "建设项目环境影响评价制度执行情况检查",
                ("EE-HP",),
                (_E,),
                "书面检查",
                "《中华人民共和国环境影响评价法》第二十七条",
            ),
            ItemSpec(
                "工业噪声排放检查", ("EE-ZS", "EE-PW"), (_E,), "现场检查", "《中华人民共和国噪声污染防治法》第二十八条"
            ),
        ),
    ),
    DepartmentSpec(
        "YJGL",
        "应急管理局",
        "应急管理",
        12,
        {
            "EM-AQ": "安全生产",
            "EM-WH": "危险化学品",
            "EM-YH": "烟花爆竹",
        },
        (
            ItemSpec(
                "生产经营单位安全生产检查", ("EM-AQ",), (_E,), "现场检查", "《中华人民共和国安全生产法》第六十五条"
            ),
            ItemSpec(
                "危险化学品经营企业检查", ("EM-WH", "EM-AQ"), (_E,), "现场检查", "《危险化学品安全管理条例》第六条"
            ),
            ItemSpec("烟花爆竹经营单位检查", ("EM-YH",), (_E,), "现场检查", "《烟花爆竹安全管理条例》第三十三条"),
        ),
    ),
    DepartmentSpec(
        "WSJK",
        "卫生健康委员会",
        "卫生健康",
        10,
        {
            "HE-YL": "医疗机构",
            "HE-GW": "公共场所卫生",
            "HE-YS": "生活饮用水",
            "HE-ZY": "职业卫生",
        },
        (
            ItemSpec("医疗机构依法执业检查", ("HE-YL",), (_E, _I), "现场检查", "《医疗机构管理条例》第四十条"),
            ItemSpec("公共场所卫生检查", ("HE-GW",), (_E,), "现场检查", "《公共场所卫生管理条例》第十一条"),
            ItemSpec(
                "生活饮用水供水单位检查", ("HE-YS",), (_E, _I), "抽样检验", "《生活饮用水卫生监督管理办法》第十六条"
            ),
            ItemSpec(
                "用人单位职业病防治检查", ("HE-ZY",), (_E,), "现场检查", "《中华人民共和国职业病防治法》第六十二条"
            ),
        ),
    ),
    DepartmentSpec(
        "JTYS",
        "交通运输局",
        "交通运输",
        10,
        {
            "TR-DY": "道路运输",
            "TR-WX": "机动车维修",
            "TR-GK": "港口经营",
        },
        (
            ItemSpec("道路运输经营者检查", ("TR-DY",), (_E,), "现场检查", "《中华人民共和国道路运输条例》第五十八条"),
            ItemSpec("机动车维修经营者检查", ("TR-WX",), (_E,), "现场检查", "《机动车维修管理规定》第四十七条"),
            ItemSpec("港口经营人经营行为检查", ("TR-GK",), (_E,), "现场检查", "《中华人民共和国港口法》第四十八条"),
        ),
    ),
    DepartmentSpec(
        "RSJ",
        "人力资源和社会保障局",
        "人社",
        5,
        {
            "HR-LD": "劳动保障监察",
            "HR-JG": "人力资源服务",
        },
        (
            ItemSpec(
                "用人单位遵守劳动保障法律法规检查", ("HR-LD",), (_E, _I, _S), "书面检查", "《劳动保障监察条例》第十一条"
            ),
            ItemSpec("人力资源服务机构经营检查", ("HR-JG",), (_E,), "现场检查", "《人力资源市场暂行条例》第三十七条"),
        ),
    ),
    DepartmentSpec(
        "WHLY",
        "文化和旅游局",
        "文化旅游",
        5,
        {
            "CT-LX": "旅行社",
            "CT-YL": "娱乐场所",
            "CT-WB": "互联网上网服务",
        },
        (
            ItemSpec("旅行社经营行为检查", ("CT-LX",), (_E,), "现场检查", "《旅行社条例》第四十一条"),
            ItemSpec("娱乐场所经营活动检查", ("CT-YL",), (_E,), "现场检查", "《娱乐场所管理条例》第三十四条"),
            ItemSpec(
                "互联网上网服务营业场所检查", ("CT-WB",), (_E,), "现场检查", "《互联网上网服务营业场所管理条例》第四条"
            ),
        ),
    ),
    DepartmentSpec(
        "SFJ",
        "司法局",
        "司法",
        3,
        {"JU-LS": "律师事务所监管", "JU-GZ": "公证机构监管"},
        (
            ItemSpec("律师事务所执业活动检查", ("JU-LS",), (_L,), "书面检查", "《中华人民共和国律师法》第五十二条"),
            ItemSpec("公证机构执业活动检查", ("JU-GZ",), (_L,), "现场检查", "《中华人民共和国公证法》第五条"),
        ),
    ),
    DepartmentSpec(
        "MZJ",
        "民政局",
        "民政",
        3,
        {"CA-ZZ": "社会组织监管"},
        (ItemSpec("社会组织抽查", ("CA-ZZ",), (_S,), "书面检查", "《社会组织抽查暂行办法》第三条"),),
    ),
    DepartmentSpec(
        "JYJ",
        "教育局",
        "教育",
        5,
        {"ED-BX": "民办学校办学"},
        (
            ItemSpec(
                "民办学校办学行为检查", ("ED-BX",), (_I, _S), "现场检查", "《中华人民共和国民办教育促进法》第四十一条"
            ),
        ),
    ),
)

RISK_CLASSES = ("A", "B", "C", "D", "E")
RISK_WEIGHTS = (30, 40, 20, 7, 3)

# (label in the file, credit-code prefix, name style, weight ‰)
ENTITY_TYPES = (
    ("企业", "91", "company", 720),
    ("个体工商户", "92", "shop", 180),
    ("农民专业合作社", "93", "coop", 20),
    ("事业单位", "12", "institution", 40),
    ("社会组织", "51", "association", 18),
    ("社会组织", "52", "nonprofit", 12),
    ("法律服务机构", "31", "law_firm", 10),
)

# industry → words that appear in company names; weight ‰
INDUSTRIES = (
    ("批发和零售业", ("商贸", "贸易", "百货", "超市", "食品", "五金", "建材", "医药"), 300),
    ("住宿和餐饮业", ("餐饮", "酒店", "餐饮管理", "饭店"), 120),
    ("制造业", ("机械", "食品", "服装", "橡胶", "电子", "家具", "化工"), 120),
    ("租赁和商务服务业", ("商务咨询", "企业管理", "广告", "人力资源"), 80),
    ("信息传输、软件和信息技术服务业", ("科技", "网络科技", "信息技术", "软件"), 70),
    ("建筑业", ("建筑工程", "装饰工程", "建设"), 60),
    ("交通运输、仓储和邮政业", ("物流", "运输", "国际货运代理", "仓储"), 60),
    ("居民服务、修理和其他服务业", ("汽车维修", "家政服务", "美容美发", "洗衣"), 60),
    ("科学研究和技术服务业", ("检测", "工程设计", "环保科技"), 30),
    ("房地产业", ("置业", "房地产开发", "物业管理"), 30),
    ("文化、体育和娱乐业", ("文化传媒", "文化旅游", "体育"), 30),
    ("农、林、牧、渔业", ("农业", "水产", "种植"), 20),
)
INSTITUTIONS = (
    ("教育", ("学校", "幼儿园", "职业培训中心")),
    ("卫生和社会工作", ("医院", "社区卫生服务中心", "养老服务中心")),
    ("科学研究和技术服务业", ("研究所", "检验检测中心")),
)
SHOP_WORDS = ("餐馆", "便利店", "水果店", "理发店", "五金店", "烟酒店", "小吃部", "汽修部", "服装店", "饺子馆")
ASSOCIATIONS = ("协会", "商会", "促进会", "研究会")
NONPROFITS = ("培训学校", "养老院", "文化中心", "社会工作服务中心")
COMPANY_FORMS = (("有限公司", 82), ("有限责任公司", 12), ("股份有限公司", 6))
MOBILE_PREFIXES = tuple(f"13{d}" for d in "0123456789") + (
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "176",
    "177",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "198",
    "199",
)
ROAD_SUFFIXES = ("路", "路", "中路", "东路", "西路", "北路", "南路", "支路")
STATUSES = (("在岗", 94), ("休假", 4), ("退休", 2))
EXPIRED_SHARE = 0.03

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # the credit-code alphabet (GB 32100)
_ORG_SPACE = 31**7
_ORG_STEP = 17_003_730_638  # ≈ 0.618·31^7, coprime to 31: i ↦ i·step + offset is a bijection mod 31^7


@dataclass
class Words:
    """Faker's zh_CN word lists, read once."""

    surnames: tuple[str, ...]
    surname_weights: tuple[int, ...]
    given: tuple[str, ...]
    trade_names: tuple[str, ...]
    roads: tuple[str, ...]

    @classmethod
    def load(cls) -> Words:
        surnames = tuple(FakerPerson.last_names)
        weights = tuple(max(1, int(float(w) * 1000)) for w in FakerPerson.last_names.values())
        given = tuple(sorted({c for name in FakerPerson.first_names for c in name}))
        trade = tuple(sorted({p for p in FakerCompany.company_prefixes if len(p) == 2 and "公司" not in p}))
        cities = sorted({c for c in FakerAddress.cities if 2 <= len(c) <= 3})
        return cls(surnames, tuple(accumulate(weights)), given, trade, tuple(cities))


@dataclass(frozen=True)
class CityFiles:
    departments: Path
    items: Path
    entities: Path
    inspectors: Path

    def in_import_order(self) -> tuple[tuple[str, Path], ...]:
        return (
            ("departments", self.departments),
            ("items", self.items),
            ("entities", self.entities),
            ("inspectors", self.inspectors),
        )


def generate(out_dir: Path, *, entities: int, inspectors: int, seed: int, progress=None) -> CityFiles:
    """Write departments.csv, items.csv, entities.csv and inspectors.csv into ``out_dir``.

    ``progress``, when given, is a factory ``(kind, total) -> bar`` of tqdm-like bars (``update``,
    ``close``): the CLI shows one per file, as a million rows take half a minute."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    words = Words.load()
    files = CityFiles(*(out_dir / f"{k}.csv" for k in ("departments", "items", "entities", "inspectors")))
    _write(files.departments, "departments", department_rows())
    _write(files.items, "items", item_rows())
    generate_entities(files.entities, entities, seed, words, bar=progress("entities", entities) if progress else None)
    _write(
        files.inspectors,
        "inspectors",
        inspector_rows(inspectors, random.Random(f"{seed}:inspectors"), words),
        bar=progress("inspectors", inspectors) if progress else None,
    )
    return files


def generate_entities(path: Path, count: int, seed: int, words: Words | None = None, bar=None) -> Path:
    """Only entities.csv (the benchmark's file); the same rows ``generate`` writes for this seed."""
    _write(path, "entities", entity_rows(count, random.Random(f"{seed}:entities"), words or Words.load()), bar=bar)
    return path


def _write(path: Path, kind: str, rows, bar=None) -> None:
    with path.open("w", encoding=ENCODING, newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(canonical_header(kind))
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                out.writerows(batch)
                if bar is not None:
                    bar.update(len(batch))
                batch = []
        out.writerows(batch)
        if bar is not None:
            bar.update(len(batch))
            bar.close()


# --- departments, items, units -------------------------------------------------------------------


def department_rows():
    for d in DEPARTMENTS:
        yield (d.code, d.full_name, "市级", CITY_CODE)


def item_rows():
    for d in DEPARTMENTS:
        for n, item in enumerate(d.items, start=1):
            yield (
                f"{d.code}-{n:03d}",
                item.name,
                d.full_name,
                d.code,
                item.legal_basis,
                "、".join(item.targets),
                item.method,
                "、".join(item.qualifications),
            )


def units(department: DepartmentSpec) -> list[tuple[str, str, County | None]]:
    """A department's enforcement units: a city-level 支队 and one 分局 per county (name, division, county)."""
    found = [(f"{department.full_name}执法支队", CITY_CODE, None)]
    found += [(f"{department.full_name}{c.short}分局", c.code, c) for c in COUNTIES]
    return found


# --- entities --------------------------------------------------------------------------------------


def credit_code(prefix: str, county: str, serial: int) -> str:
    """A valid unified social credit code, unique per ``serial`` (check character by python-stdnum)."""
    value = (serial * _ORG_STEP + 7_654_321) % _ORG_SPACE
    org = []
    for _ in range(7):
        value, digit = divmod(value, 31)
        org.append(_ALPHABET[digit])
    body = f"{prefix}{county}MA{''.join(org)}"
    return body + stdnum_uscc.calc_check_digit(body)


def _cumulative(weights) -> list[int]:
    return list(accumulate(weights))


def entity_rows(count: int, rng: random.Random, words: Words):
    """Rows of entities.csv, generated a batch of columns at a time."""
    county_cum = _cumulative(c.weight for c in COUNTIES)
    type_cum = _cumulative(t[3] for t in ENTITY_TYPES)
    industry_cum = _cumulative(i[2] for i in INDUSTRIES)
    form_cum = _cumulative(f[1] for f in COMPANY_FORMS)
    risk_cum = _cumulative(RISK_WEIGHTS)
    serial = 0
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        counties = rng.choices(COUNTIES, cum_weights=county_cum, k=n)
        types = rng.choices(ENTITY_TYPES, cum_weights=type_cum, k=n)
        industries = rng.choices(INDUSTRIES, cum_weights=industry_cum, k=n)
        forms = rng.choices(COMPANY_FORMS, cum_weights=form_cum, k=n)
        risks = rng.choices(RISK_CLASSES, cum_weights=risk_cum, k=n)
        for county, etype, industry, form, risk in zip(counties, types, industries, forms, risks):
            serial += 1
            label, prefix, style, _ = etype
            town_no = rng.randrange(len(county.towns))
            name, industry_name = _entity_name(rng, words, style, county, industry, form[0])
            lat, lon = _point(rng, county, town_no)
            yield (
                credit_code(prefix, county.code, serial),
                name,
                label,
                f"{county.code}{town_no + 1:03d}",
                f"山东省{CITY_NAME}{county.name}{county.towns[town_no]}{rng.choice(words.roads)}"
                f"{rng.choice(ROAD_SUFFIXES)}{rng.randint(1, 399)}号",
                industry_name,
                risk,
                _mobile(rng) if rng.random() < 0.9 else "",
                f"{lat:.6f}",
                f"{lon:.6f}",
            )


def _trade_name(rng: random.Random, words: Words) -> str:
    if rng.random() < 0.5:
        return rng.choice(words.trade_names)
    return rng.choice(words.given) + rng.choice(words.given)


def _entity_name(rng, words: Words, style: str, county: County, industry, form: str) -> tuple[str, str]:
    """(name, industry) for one entity of the given style."""
    trade = _trade_name(rng, words)
    if style == "company":
        return f"{CITY_NAME[:2]}{trade}{rng.choice(industry[1])}{form}", industry[0]
    if style == "shop":
        surname = words.surnames[rng.randrange(len(words.surnames))]
        return f"{county.name}{surname}记{rng.choice(SHOP_WORDS)}", industry[0]
    if style == "coop":
        return f"{county.name}{trade}{rng.choice(('果蔬', '茶叶', '蔬菜', '水产'))}专业合作社", "农、林、牧、渔业"
    if style == "institution":
        sector, kinds = rng.choice(INSTITUTIONS)
        return f"{CITY_NAME}{county.name}{trade}{rng.choice(kinds)}", sector
    if style == "association":
        return f"{CITY_NAME}{county.name}{rng.choice(industry[1])}{rng.choice(ASSOCIATIONS)}", "社会组织"
    if style == "nonprofit":
        return f"{CITY_NAME}{county.name}{trade}{rng.choice(NONPROFITS)}", "社会组织"
    return f"山东{trade}律师事务所", "租赁和商务服务业"


def _town_centre(county: County, town_no: int) -> tuple[float, float]:
    """Where a town lies: fixed per town (towns spread around their county's centre)."""
    place = random.Random(f"{county.code}{town_no}")
    return (
        county.lat + place.uniform(-county.spread, county.spread),
        county.lon + place.uniform(-county.spread, county.spread),
    )


TOWN_CENTRES = {(c.code, n): _town_centre(c, n) for c in COUNTIES for n in range(len(c.towns))}


def _point(rng: random.Random, county: County, town_no: int) -> tuple[float, float]:
    """A point near the town's centre, inside Qingdao."""
    lat, lon = TOWN_CENTRES[(county.code, town_no)]
    lat += rng.gauss(0, county.spread / 5)
    lon += rng.gauss(0, county.spread / 5)
    return min(max(lat, LAT_BOUNDS[0]), LAT_BOUNDS[1]), min(max(lon, LON_BOUNDS[0]), LON_BOUNDS[1])


def _mobile(rng: random.Random) -> str:
    return f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(100_000_000):08d}"


# --- inspectors ------------------------------------------------------------------------------------


def inspector_rows(count: int, rng: random.Random, words: Words):
    department_cum = _cumulative(d.weight for d in DEPARTMENTS)
    unit_weights = [20 * sum(c.weight for c in COUNTIES) // 80] + [c.weight for c in COUNTIES]
    unit_cum = _cumulative(unit_weights)
    status_cum = _cumulative(s[1] for s in STATUSES)
    department_units = {d.abbr: units(d) for d in DEPARTMENTS}
    for serial in range(1, count + 1):
        department = rng.choices(DEPARTMENTS, cum_weights=department_cum)[0]
        unit_name, unit_division, _ = rng.choices(department_units[department.abbr], cum_weights=unit_cum)[0]
        codes = sorted(
            rng.sample(sorted(department.qualifications), rng.randint(1, min(3, len(department.qualifications))))
        )
        yield (
            f"{CITY_CODE}{DEPARTMENTS.index(department):02d}{serial:06d}",
            _person_name(rng, words),
            department.full_name,
            department.code,
            unit_name,
            unit_division,
            "、".join(codes),
            "、".join(department.qualifications[c] for c in codes),
            _mobile(rng),
            _expiry(rng).isoformat(),
            rng.choices(STATUSES, cum_weights=status_cum)[0][0],
        )


def _person_name(rng: random.Random, words: Words) -> str:
    surname = rng.choices(words.surnames, cum_weights=words.surname_weights)[0]
    given = "".join(rng.choice(words.given) for _ in range(1 if rng.random() < 0.3 else 2))
    return surname + given


def _expiry(rng: random.Random) -> dt.date:
    """Certificates run to 2027–2031; a few expired in 2023–2025."""
    if rng.random() < EXPIRED_SHARE:
        return dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(900))
    return dt.date(2027, 1, 1) + dt.timedelta(days=rng.randrange(1826))


# --- credit-risk indicators (with a hidden propensity, for evaluating the risk engine) ----------------

INDICATORS_DATE = dt.date(2026, 11, 30)
MISSING_SHARE = 0.05  # values a regulator's export lacks


def generate_indicators(entities_csv: Path, model_file: Path, seed: int) -> tuple[Path, Path]:
    """indicators.csv (import format: one observation a row) for the entities of ``entities_csv``,
    from the latent model of ``services.risk.world``, and propensity.csv: each entity's hidden
    chance that an inspection finds a problem. The engine never reads propensity.csv; it is the
    truth an evaluation compares with."""
    import tomllib

    import numpy as np

    model = parse_model(tomllib.loads(Path(model_file).read_text(encoding="utf-8")))
    with entities_csv.open(encoding=ENCODING, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        codes = [row[0] for row in reader if row]
    truth = world.generate(model, len(codes), seed)
    missing = np.random.default_rng(seed + 7).random(truth.values.shape) < MISSING_SHARE
    out_dir = entities_csv.parent
    indicators, propensity = out_dir / "indicators.csv", out_dir / "propensity.csv"
    day = INDICATORS_DATE.isoformat()

    def rows():
        for n, code in enumerate(codes):
            for j, ind in enumerate(model.indicators):
                if not missing[n, j] and not ind.derived:  # counted by the engine, never imported
                    value = truth.values[n, j]
                    yield (code, ind.code, f"{value:g}", day)

    _write(indicators, "indicators", rows())
    with propensity.open("w", encoding=ENCODING, newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(("uscc", "propensity"))
        out.writerows((code, f"{p:.6f}") for code, p in zip(codes, truth.propensity))
    return indicators, propensity
