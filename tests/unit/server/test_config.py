"""ServerConfig's data folders: validated at the boundary and handed to every worker process."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import SpecError
from modelyard.server.config import ServerConfig
from modelyard.server.jobs import worker as worker_module
from modelyard.server.jobs.pool import WorkerPool


def test_a_data_dir_that_is_not_a_folder_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="expected existing folders") as info:
        ServerConfig.make(data_dirs=[tmp_path / "nope"])
    assert info.value.field == "server.data_dirs"


def test_no_data_folder_by_default_and_the_store_always_refused(home: Path) -> None:
    access = ServerConfig(home=home).data_access()
    assert access.folders == () and home.resolve() in access.refused
    assert access.max_bytes == 4096 * 1024 * 1024


def test_the_workers_get_the_same_data_rule_as_the_submit_route(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ServerConfig(home=home, data_dirs=[tmp_path], max_data_mb=7)
    argv = WorkerPool(config, home).command()[3:]  # after `python -m modelyard.server.jobs.worker`
    built: list[worker_module.Worker] = []
    monkeypatch.setattr(worker_module.Worker, "serve_forever", lambda self: built.append(self))
    worker_module.main(argv)
    assert built[0].access == config.data_access()
