"""The one run/job status vocabulary: its words, how it compares and serializes, old words, bad filters."""

from __future__ import annotations

import json

import pytest

from modelyard.errors import InputError
from modelyard.status import FINAL, LEGACY, Status, parse_status


def test_the_words_and_which_are_final() -> None:
    assert [s.value for s in Status] == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "interrupted",
        "pruned",
    ]
    assert {s.value for s in FINAL} == {"succeeded", "failed", "cancelled", "interrupted", "pruned"}
    assert [s.final for s in Status] == [False, False, True, True, True, True, True]


def test_a_status_is_its_word_in_comparisons_sets_dicts_text_and_json() -> None:
    s = Status.SUCCEEDED
    assert s == "succeeded" and "succeeded" == s and hash(s) == hash("succeeded")
    assert "succeeded" in FINAL and "running" not in FINAL
    assert {Status.QUEUED: "q"}["queued"] == "q"
    assert (str(s), f"{s}", f"{s:>10}", json.dumps({"status": s})) == (
        "succeeded",
        "succeeded",
        " succeeded",
        '{"status": "succeeded"}',
    )


def test_stored_reads_old_words() -> None:
    assert LEGACY == {"completed": Status.SUCCEEDED}
    assert Status.stored("completed") is Status.SUCCEEDED and Status.stored("failed") is Status.FAILED
    with pytest.raises(ValueError):
        Status("completed")  # only rows read through Status.stored take the old word


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("runing", "received 'runing'; did you mean 'running'?"),
        ("completed", "received 'completed'; 'completed' is now called 'succeeded'"),
        ("zzz", "received 'zzz'$"),
        (3, "received 3$"),
    ],
)
def test_parse_status_names_the_field_and_the_words(given: object, message: str) -> None:
    assert parse_status("failed") is Status.FAILED
    with pytest.raises(
        InputError,
        match="expected one of queued, running, succeeded, failed, cancelled, interrupted, pruned, " + message,
    ):
        parse_status(given)
    with pytest.raises(InputError) as caught:
        parse_status(given, field="filter.status")
    assert caught.value.field == "filter.status" and "Invalid value for `filter.status`" in caught.value.message
