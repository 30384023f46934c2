"""Reading the README's walk-throughs as steps, and running them in one shell.

How the README marks them, so that it stays readable for a person:

- a fenced block whose info string is exactly `sh` is a walk-through step: its commands run in
  order, all blocks in one shell session (so `export`, variables and functions carry over);
  any other block (`shell`, `text`, `json`, indented) is shown, not run;
- a command ends where the shell says it does (continuation lines, quotes spanning lines);
- `# exit N` in a command's trailing comment: it must exit N; without it, it must exit 0;
- a comment line `#> text` under a command: its output (standard output and error together)
  must say `text`, whitespace runs counting as one space, `…` standing for anything;
- `# once …` in a command's trailing comment: what it shows comes about a moment later (a
  signal is decided after it is sent), so it is run again until it holds, for a while;
- every other comment is for the reader.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_EXIT = re.compile(r"#.*?\bexit (\d+)\b")
_ONCE = re.compile(r"#\s*once\b")
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass
class Step:
    command: str
    line: int  # in the README, 1-based
    section: str
    exit_code: int = 0
    says: list[str] = field(default_factory=list)
    eventually: bool = False

    def where(self) -> str:
        return f"README.md line {self.line} ({self.section})"


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    checked = subprocess.run(
        ["bash", "-n"], input=text, capture_output=True, text=True, check=False
    )
    return checked.returncode == 0


def steps(readme: str) -> list[Step]:
    """Every command of every `sh` block, in order, with what the README says of it."""
    found: list[Step] = []
    section = "the top"
    fence: str | None = None
    pending: list[str] = []
    start = 0
    for number, text in enumerate(readme.splitlines(), start=1):
        if fence is None:
            if text.startswith("#"):
                section = text.lstrip("#").strip()
            opened = _FENCE.match(text)
            if opened:
                fence = opened.group(1)
            continue
        if _FENCE.match(text):
            if pending:
                raise ValueError(f"README.md line {start}: a command does not end: {pending}")
            fence = None
            continue
        if fence != "sh":
            continue
        stripped = text.strip()
        if not pending:
            if stripped.startswith("#>"):
                if not found or found[-1].line < start:
                    raise ValueError(f"README.md line {number}: '#>' follows no command")
                found[-1].says.append(stripped[2:].strip())
                continue
            if not stripped or stripped.startswith("#"):
                continue
            start = number
        pending.append(text)
        command = "\n".join(pending)
        if _complete(command):
            last = pending[-1]
            marked = _EXIT.search(last)
            found.append(
                Step(
                    command=command,
                    line=start,
                    section=section,
                    exit_code=int(marked.group(1)) if marked else 0,
                    eventually=bool(_ONCE.search(last)),
                )
            )
            pending = []
    return found


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def says(output: str, expected: str) -> bool:
    """Does `output` say `expected`, `…` standing for anything?"""
    pieces = [_normal(p) for p in expected.split("…")]
    shown = _normal(output)
    at = 0
    for piece in pieces:
        if not piece:
            continue
        found = shown.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


@dataclass
class Outcome:
    exit_code: int
    output: str


class Shell:
    """One bash session; each command's output goes to a file of its own."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self._dir = Path(tempfile.mkdtemp(prefix="yuqing-readme-shell-"))
        self._count = 0
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Shell:
        self._process = await asyncio.create_subprocess_exec(
            "bash",
            "--noprofile",
            "--norc",
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def run(self, command: str, patience: float) -> Outcome:
        assert self._process is not None
        assert self._process.stdin is not None and self._process.stdout is not None
        self._count += 1
        script = self._dir / f"{self._count:03d}.sh"
        output = self._dir / f"{self._count:03d}.out"
        script.write_text(command + "\n", encoding="utf-8")
        marker = f"__readme_step_{self._count}__"
        self._process.stdin.write(
            f". {script} > {output} 2>&1 < /dev/null; echo {marker} $?\n".encode()
        )
        await self._process.stdin.drain()
        while True:
            raw = await asyncio.wait_for(self._process.stdout.readline(), patience)
            if not raw:
                raise RuntimeError(f"the shell ended while running: {command}")
            text = raw.decode("utf-8", "replace").strip()
            if text.startswith(marker):
                code = int(text.split()[-1])
                return Outcome(code, output.read_text(encoding="utf-8", errors="replace"))
