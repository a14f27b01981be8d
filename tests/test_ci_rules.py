"""One CI rule for the whole suite: where CI is set (true, 1 or yes), a missing extra, weights copy or
package index fails the run instead of skipping; skip reasons are printed in every CI log (-rs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import conftest
from tests.test_readme import setup_commands


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("YES", True), (" True ", True),
                                                 ("", False), ("0", False), ("false", False)])
def test_in_ci_accepts_true_1_and_yes(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert conftest.in_ci() is expected


def test_missing_shared_weights_fail_in_ci_and_skip_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conftest, "SHARED_WEIGHTS", tmp_path)
    (tmp_path / "here.bin").write_bytes(b"x")
    assert conftest.require_shared_weights("here.bin") == tmp_path
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"gone\.bin not found .* CI must provide it"):
        conftest.require_shared_weights("here.bin", "gone.bin")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"needs the weights copies in \.\./shared/weights \(gone\.bin"):
        conftest.require_shared_weights("gone.bin")


def test_the_package_index_rule_is_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """package_index used to fail only for CI=true: CI=1 skipped the network tests without a word."""
    monkeypatch.setattr(conftest, "_index_reachable", lambda: (False, "no route"))
    fixture = conftest.package_index.__wrapped__  # type: ignore[attr-defined]
    monkeypatch.setenv("CI", "yes")
    with pytest.raises(pytest.fail.Exception, match="CI must reach it"):
        fixture()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="unreachable here: no route"):
        fixture()


def test_the_test_command_prints_skip_reasons() -> None:
    assert " -rs " in f" {setup_commands()[1]} "
