"""Every locale says the same things: same text codes, same template files."""

from pathlib import Path

from bot.render import TEMPLATES, text, text_codes


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
