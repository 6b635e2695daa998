"""storage.journal: the append-only JSON-lines job journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.journal import JobJournal, JournalError


def test_replay_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert list(JobJournal(tmp_path / "none.jsonl").replay()) == []


def test_append_then_replay_in_write_order(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "jobs.jsonl"  # the folder is created on first write
    journal = JobJournal(path)
    journal.append({"op": "queued", "n": 1})
    journal.append({"op": "finished", "n": 2})
    journal.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"op": "queued", "n": 1},
        {"op": "finished", "n": 2},
    ]
    assert list(JobJournal(path).replay()) == [
        {"op": "queued", "n": 1},
        {"op": "finished", "n": 2},
    ]


def test_appends_reach_the_file_before_close(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    journal = JobJournal(path, fsync=True)
    journal.append({"op": "queued"})
    assert list(JobJournal(path).replay()) == [{"op": "queued"}]
    journal.close()


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"op":"queued","n":1}\n\n{"op":"finished","prompt_id":"p","ent')
    assert list(JobJournal(path).replay()) == [{"op": "queued", "n": 1}]


def test_records_appended_after_a_torn_line_are_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"op":"queued","n":1}\n{"op":"fini')
    journal = JobJournal(path)
    assert list(journal.replay()) == [{"op": "queued", "n": 1}]
    journal.append({"op": "queued", "n": 2})
    journal.close()
    assert list(JobJournal(path).replay()) == [{"op": "queued", "n": 1}, {"op": "queued", "n": 2}]


def test_non_json_values_are_written_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    journal = JobJournal(path)
    journal.append({"op": "x", "path": tmp_path})
    journal.close()
    assert list(JobJournal(path).replay()) == [{"op": "x", "path": str(tmp_path)}]


def test_compaction_threshold_counts_replayed_and_appended_records(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"op":"a"}\n{"op":"b"}\n')
    journal = JobJournal(path, compact_after=3)
    assert len(list(journal.replay())) == 2
    assert not journal.needs_compaction()
    journal.append({"op": "c"})
    assert not journal.needs_compaction()
    journal.append({"op": "d"})
    assert journal.needs_compaction()
    journal.close()


def test_rewrite_replaces_the_file_and_appends_continue_after_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    journal = JobJournal(path, compact_after=2)
    for n in range(4):
        journal.append({"op": "queued", "n": n})
    assert journal.needs_compaction()
    journal.rewrite([{"op": "snapshot", "n": 3}])
    assert not journal.needs_compaction()
    assert not path.with_suffix(".tmp").exists()
    journal.append({"op": "queued", "n": 4})
    journal.close()
    assert list(JobJournal(path).replay()) == [
        {"op": "snapshot", "n": 3},
        {"op": "queued", "n": 4},
    ]


def test_rewrite_with_nothing_leaves_an_empty_journal(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    journal = JobJournal(path)
    journal.append({"op": "queued"})
    journal.rewrite([])
    journal.close()
    assert path.read_text() == "" and list(JobJournal(path).replay()) == []


def test_unwritable_location_raises_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    journal = JobJournal(blocker / "jobs.jsonl")
    with pytest.raises(JournalError, match="cannot open job journal"):
        journal.append({"op": "queued"})
