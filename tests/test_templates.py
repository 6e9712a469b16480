"""Every locale says the same things: same text codes, same template files."""

from pathlib import Path

from core.render import TEMPLATES, text, text_codes


def test_locales_define_the_same_texts():
    assert text_codes("zh-CN") == text_codes("en")
    assert text_codes("zh-CN")  # not vacuous


def test_locales_have_the_same_templates():
    def names(locale):
        root = TEMPLATES / locale
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

    assert names("zh-CN") == names("en")


def test_text_renders_in_each_locale():
    assert text("db_upgraded", locale="zh-CN", applied=[]) != text("db_upgraded", locale="en", applied=[])


def alert_kinds() -> set[str]:
    """Every alert kind the code raises: the first template named after each ``raise_alert`` /
    ``alert_plan_coordinators`` call (an alert's kind is its template's name) and the dispatcher's
    undeliverable alert."""
    import re

    from bot.dispatcher import ALERT_TEMPLATE

    root = Path(__file__).resolve().parent.parent
    kinds = {ALERT_TEMPLATE.removesuffix(".j2")}
    for path in [*root.glob("services/*.py"), *root.glob("services/**/*.py"), root / "scheduler.py"]:
        source = path.read_text(encoding="utf-8")
        for call in re.finditer(r"(?:raise_alert|alert_plan_coordinators)\(", source):
            found = re.search(r'"(\w+)\.j2"', source[call.end() : call.end() + 300])
            if found:
                kinds.add(found.group(1))
    return kinds


def test_every_alert_kind_has_a_summary_line_in_each_locale():
    kinds = alert_kinds()
    assert {"recusal_recorded", "survey_alert", "checkin_flagged", "correction_requested"} <= kinds
    for locale in ("zh-CN", "en"):
        unlabelled = [k for k in sorted(kinds) if text("alert_summary", locale, kind=k, c={}).strip() == k]
        assert not unlabelled, (locale, unlabelled)
