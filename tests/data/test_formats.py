"""Tests of the public-format readers on small synthetic files written to tmp_path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from xlt.data.sources import formats
from xlt.errors import DataError


def _write_jsonl(path: Path, records: list[object], *, bad_line: str | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    if bad_line is not None:
        lines.insert(1, bad_line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_multialpaca_jsonl_and_array(tmp_path: Path) -> None:
    records = [
        {"instruction": "두 수를 더하세요.", "input": "2, 3", "output": "5"},
        {"instruction": "인사말을 쓰세요.", "input": "", "output": "안녕하세요"},
    ]
    path = _write_jsonl(tmp_path / "multialpaca_ko.json", records)
    got = list(formats.read_multialpaca(path))
    assert got == [
        {"inputs": "두 수를 더하세요.\n\n2, 3", "targets": "5", "lang": "ko"},
        {"inputs": "인사말을 쓰세요.", "targets": "안녕하세요", "lang": "ko"},
    ]
    array = tmp_path / "alpaca-data.json"
    array.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    assert list(formats.read_multialpaca(array, lang="ko")) == got
    with pytest.raises(DataError, match="language from the file name"):
        list(formats.read_multialpaca(array))


def test_multialpaca_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "multialpaca_ja.jsonl", [{"instruction": "a", "output": "b"}] * 2, bad_line="{oops")
    with pytest.raises(DataError, match=r"multialpaca_ja\.jsonl:2: not valid JSON"):
        list(formats.read_multialpaca(path))
    missing = _write_jsonl(tmp_path / "m_de.json", [{"instruction": "a", "output": "b"}, {"instruction": "c"}])
    with pytest.raises(DataError, match=r"m_de\.json:2: missing field 'output'"):
        list(formats.read_multialpaca(missing))
    typed = _write_jsonl(tmp_path / "m_fr.json", [{"instruction": ["a"], "output": "b"}])
    with pytest.raises(DataError, match=r"m_fr\.json:1: field 'instruction' must be a string, got list"):
        list(formats.read_multialpaca(typed))
    with pytest.raises(DataError, match="'xx'"):
        list(formats.read_multialpaca(_write_jsonl(tmp_path / "multialpaca_xx.json", [])))


def test_xp3_gzip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "xp3_task_zh.jsonl.gz"
    rows = [{"inputs": "翻译：你好", "targets": "Hello"}, {"inputs": "问：一加一？", "targets": "二"}]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    assert list(formats.read_xp3(path, "zh")) == [{**r, "lang": "zh"} for r in rows]
    empty = _write_jsonl(tmp_path / "x.jsonl", [rows[0], {"inputs": "q", "targets": "  "}])
    with pytest.raises(DataError, match=r"x\.jsonl:2: field 'targets' is empty"):
        list(formats.read_xp3(empty, "zh"))
    not_object = _write_jsonl(tmp_path / "y.jsonl", [rows[0], ["inputs", "targets"]])
    with pytest.raises(DataError, match=r"y\.jsonl:2: expected a JSON object, got list"):
        list(formats.read_xp3(not_object, "zh"))
    with pytest.raises(DataError, match="'kr'"):
        list(formats.read_xp3(path, "kr"))
    with pytest.raises(DataError, match="no such file"):
        list(formats.read_xp3(tmp_path / "absent.jsonl", "zh"))


def test_aya_maps_iso639_3_and_filters(tmp_path: Path) -> None:
    def row(text: str, name: str, code: str) -> dict[str, str]:
        return {"inputs": f"Q {text}", "targets": f"A {text}", "language": name, "language_code": code,
                "annotation_type": "original-annotations", "user_id": "u1"}  # fmt: skip

    path = _write_jsonl(
        tmp_path / "aya.jsonl",
        [row("1", "Korean", "kor"), row("2", "Moroccan Arabic", "ary"), row("3", "Yoruba", "yor"),
         row("4", "Standard Malay", "zsm"), row("5", "Japanese", "jpn")],
    )  # fmt: skip
    assert [(r["lang"], r["targets"]) for r in formats.read_aya(path)] == [("ko", "A 1"), ("ar", "A 2"), ("ja", "A 5")]
    assert [r["inputs"] for r in formats.read_aya(path, langs=["ja"])] == ["Q 5"]
    bad = _write_jsonl(tmp_path / "aya_bad.jsonl", [row("1", "Korean", "kor"), {"inputs": "q", "targets": "a"}])
    with pytest.raises(DataError, match=r"aya_bad\.jsonl:2: missing field 'language_code'"):
        list(formats.read_aya(bad))


def test_pretraining_jsonl_and_text(tmp_path: Path) -> None:
    docs = [{"text": "Erster Absatz.\nZweite Zeile.", "timestamp": "2020-01-01T00:00:00Z", "url": "https://a.example"},
            {"text": "Noch ein Dokument."}]  # fmt: skip
    path = _write_jsonl(tmp_path / "c4-de.tfrecord-00000.json", docs)
    assert list(formats.read_pretraining(path, "de")) == [{"text": d["text"], "lang": "de"} for d in docs]
    bad = _write_jsonl(tmp_path / "c4.json", [docs[0], {"url": "https://b.example"}])
    with pytest.raises(DataError, match=r"c4\.json:2: missing field 'text'"):
        list(formats.read_pretraining(bad, "de"))
    txt = tmp_path / "corpus.txt"
    txt.write_text("\n\nline one\nline two\n\n\nsecond doc\n", encoding="utf-8")
    assert [d["text"] for d in formats.read_pretraining(txt, "en")] == ["line one\nline two", "second doc"]
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not UTF-8"):
        list(formats.read_pretraining(latin1, "fr"))


def test_lang_from_filename() -> None:
    assert formats.lang_from_filename("data/multialpaca_ko.json") == "ko"
    assert formats.lang_from_filename("vi.jsonl.gz") == "vi"
    assert formats.lang_from_filename("multialpaca-pt.json") == "pt"
    with pytest.raises(DataError):
        formats.lang_from_filename("multialpaca.json")
