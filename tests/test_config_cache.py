"""Configuration files are parsed once per version: again only when the file changes."""

from __future__ import annotations

from pathlib import Path

from yuqing.config_cache import digest_of, parsed


def test_a_file_is_parsed_once_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('version = "1"\n', encoding="utf-8")
    reads: list[str] = []

    def load(where: Path) -> str:
        text = where.read_text(encoding="utf-8")
        reads.append(text)
        return text

    first = parsed(load, path)
    assert parsed(load, path) is first and len(reads) == 1
    path.write_text('version = "2, edited"\n', encoding="utf-8")
    assert parsed(load, path) == 'version = "2, edited"\n' and len(reads) == 2
    # A missing file is the loader's to report, every time.
    missing = tmp_path / "gone.toml"
    try:
        parsed(load, missing)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing file must reach the loader")


def test_a_digest_is_computed_once_per_parsed_object() -> None:
    calls: list[object] = []
    model = {"a": 1}

    def compute(value: object) -> str:
        calls.append(value)
        return "sha"

    assert digest_of(model, compute) == digest_of(model, compute) == "sha"
    assert len(calls) == 1
