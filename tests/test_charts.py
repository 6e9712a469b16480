"""core/charts.py: Chinese labels on any machine (the font ships with a dependency), no
matplotlib warnings, even for an empty month."""

from __future__ import annotations

import io
import warnings

from core import charts

LABELS = {
    "drawn": "抽中",
    "done": "已完成",
    "problems": "发现问题",
    "rate": "问题发现率",
    "risk": "风险等级",
    "count": "检查对象数",
    "title": "各风险等级的检查",
}


def test_a_zh_cn_chart_keeps_chinese_labels_with_the_shipped_font():
    locale, font = charts.chart_locale("zh-CN")
    assert locale == "zh-CN" and font in charts.CJK_FONTS  # never the English fallback
    from matplotlib import font_manager

    assert any(f.name == charts.SHIPPED_FONT for f in font_manager.fontManager.ttflist)


def test_an_empty_month_draws_without_warnings():
    _, font = charts.chart_locale("zh-CN")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph or a bad axis would be a warning
        png = charts.risk_chart([(c, 0, 0, 0, None) for c in "ABCDE"], LABELS, font)
    from matplotlib import image

    picture = image.imread(io.BytesIO(png), format="png")
    assert picture.shape[:2] == (360, 800)
