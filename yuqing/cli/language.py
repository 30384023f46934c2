"""The language the command line speaks: Chinese unless YUQING_LANG (or, without it, the
locale: LC_ALL, LC_MESSAGES, LANG) names English (`en`, `en_US.UTF-8`).

The help is written in the code in English and kept in the catalog in both languages
(`cli.<command>`, `cli.<command>.<parameter>`, `cli.opt.<parameter>` for a parameter many
commands share); `localize` puts the reader's words in place when help is shown, so a command
that is not asked for help never reads the catalog.
"""

from __future__ import annotations

from typing import Any

# The words click writes around the help, by the catalog key of each.
_HEADINGS = {"Options": "cli.options", "Commands": "cli.commands", "Arguments": "cli.arguments"}


def cli_language() -> str:
    """`zh` or `en`, from the environment (the tools' own reading: `yuqing.tool.language`)."""
    from yuqing.tool import language

    return language()


def localize(command: Any, name: str, ctx: Any = None) -> None:
    """Put `command`'s help and its parameters' help in the reader's language.

    The code's English is kept on the command, so one process may show both (tests do)."""
    lang = cli_language()
    shown = command.get_help_option(ctx) if ctx is not None else None  # --help itself
    params = [*command.params, *([shown] if shown is not None else [])]
    english = getattr(command, "_english", None)
    if english is None:
        english = command._english = (command.help, [getattr(p, "help", None) for p in params])
    help_, params_help = english
    command.help, command.short_help = help_, None
    for param, text in zip(params, params_help, strict=False):
        param.help = text
    if lang == "en":
        return
    from yuqing import i18n

    if i18n.has(f"cli.{name}"):
        command.help = i18n.t(f"cli.{name}", lang)
    for param in params:
        own, common = f"cli.{name}.{param.name}", f"cli.opt.{param.name}"
        if i18n.has(own):
            param.help = i18n.t(own, lang)
        elif i18n.has(common) and i18n.t(common, "en") == getattr(param, "help", None):
            param.help = i18n.t(common, lang)


def heading(text: str) -> str:
    """A heading click writes (`Options`), in the reader's language."""
    key = _HEADINGS.get(text)
    if key is None or cli_language() == "en":
        return text
    from yuqing import i18n

    return i18n.t(key, "zh")


def usage_prefix() -> str:
    if cli_language() == "en":
        return "Usage: "
    from yuqing import i18n

    return i18n.t("cli.usage", "zh")


def _classes() -> tuple[type[Any], type[Any]]:
    import typer

    base: Any = typer.Context.formatter_class  # click's HelpFormatter, as typer ships it

    class Formatter(base):
        def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
            super().write_usage(prog, args, usage_prefix() if prefix is None else prefix)

        def write_heading(self, text: str) -> None:
            super().write_heading(heading(text))

    class Context(typer.Context):
        formatter_class = Formatter

    return Formatter, Context


Formatter, Context = _classes()
