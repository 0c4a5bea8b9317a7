"""`modelyard jobs submit`'s side of a submission: data paths relative to the user's directory
are sent absolute (the server resolves relative ones against its data folders instead)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.server.jobs.submit import absolute_data_path


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"source": "csv", "path": "t.csv", "target": "y"}, ["path"]),
        (
            {"source": {"type": "npy", "x": "x.npy", "y": "y.npy", "x_test": "a.npy", "y_test": "b.npy"}},
            ["x", "y", "x_test", "y_test"],
        ),
        ({"source": {"type": "npz", "options": {"path": "d.npz", "x": "inputs"}}}, ["path"]),
    ],
)
def test_jobs_submit_sends_every_data_path_absolute(tmp_path: Path, data: dict, fields: list[str]) -> None:
    out = absolute_data_path({"data": data}, tmp_path)["data"]
    holder = out["source"] if isinstance(out["source"], dict) else out
    holder = holder.get("options", holder)
    for field in fields:
        assert Path(holder[field]) == tmp_path / Path(holder[field]).name, field
    assert holder.get("x") in (None, "inputs") or "x" in fields  # npz keys are not paths
