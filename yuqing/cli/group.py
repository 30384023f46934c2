"""The `yuqing` command group: how every command ends (see `yuqing.tool`).

Click's own errors (a missing option, an unknown command) become one line too, naming the
command whose `--help` says more; nothing reaches the person as a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

from typer.core import TyperGroup

from yuqing import tool
from yuqing.cli import language


class YuqingGroup(TyperGroup):
    context_class = language.Context  # help in the reader's language (yuqing.cli.language)

    def get_help(self, ctx: Any) -> str:
        language.localize(self, self.name or "yuqing", ctx)
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None:
                language.localize(command, name)
        return str(super().get_help(ctx))

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = result if isinstance(result, int) else tool.DONE
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else tool.DONE
        except BaseException as error:
            code = _report(error)
        sys.stdout.flush()
        if standalone_mode:
            sys.exit(code)
        return code


def _report(error: BaseException) -> int:
    name = type(error).__name__
    if name == "NoArgsIsHelpError":  # `yuqing` alone: the help, as asked
        sys.stdout.write(error.format_message() + "\n")  # type: ignore[attr-defined]
        return tool.DONE
    if name == "Abort":
        return tool.report(KeyboardInterrupt())
    message = getattr(error, "format_message", None)
    if message is not None and hasattr(error, "exit_code"):  # click's usage errors
        # One line: click lists choices on lines of their own.
        text = " ".join(str(message()).replace("Value error, ", "").split()).rstrip(".")
        ctx = getattr(error, "ctx", None)
        where = f"; `{ctx.command_path} --help` says what it takes" if ctx is not None else ""
        tool.say(tool.error_line(text[:1].lower() + text[1:] + where))
        return tool.BAD_INPUT
    return tool.report(error)
