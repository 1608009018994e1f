"""The stack's generated secrets and where the embedded PostgreSQL cluster lives."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.config import get_settings
from pipelines.stack import postgres, secrets


def test_a_secret_is_generated_once_into_a_private_file_and_a_given_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "svc.env"
    first = secrets.ensure(path, "A")
    assert len(first) >= 20 and secrets.ensure(path, "A") == first
    second = secrets.ensure(path, "B", make=lambda: "made")
    assert second == "made" and secrets.read(path, "A") == first  # other lines kept
    assert secrets.ensure(path, "A", given="from-the-vault") == "from-the-vault"
    assert secrets.read(path, "A") == first  # a given secret is not written
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


def test_the_cluster_lives_in_the_state_dir_when_its_owner_can_reach_it(
        tmp_path: Path, isolated_settings: Path) -> None:
    root = postgres.root_dir(get_settings())
    if os.geteuid() != 0:
        assert root == isolated_settings.resolve() / "postgres"
        return
    # as root: the postgres user cannot enter pytest's private tmp folder (0700)
    private = isolated_settings.resolve()
    owner = postgres._owner()
    assert owner is not None
    assert postgres._reachable_by(Path("/tmp") / "x", owner) is True
    assert postgres._reachable_by(private / "postgres", owner) is False
    assert root.parent == Path(owner.pw_dir) and root.name.startswith("radflow-")
