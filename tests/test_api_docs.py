"""docs/api.md runs: every ```python block, in order, in one namespace, as a reader would paste them.

The default weights name resolves to a tiny random generator placed in a temporary weights cache (offline
mode on, so nothing is downloaded); CREPE comes from the tests' weights cache. The audio is noise, but
every shape, length, row and file the page promises is real and checked here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import soundfile as sf
from conftest import REPO, TEST_DATA_DIR
from helpers import tiny_weights

PAGE = REPO / "docs" / "api.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)


@pytest.fixture()
def tiny_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package_index: None) -> Path:
    """A weights cache where ``default`` is a tiny generator, offline; the work folder is the cwd. CREPE (for
    the pitch example) is pulled into the tests' cache first, whatever ran before."""
    from vocoder_cli.metrics.pitch import crepe_weights

    crepe_weights()
    data = tmp_path / "data"
    tiny_weights(data / "weights" / "hifigan-universal-v1" / "generator.safetensors")
    for name in ("crepe-full", "crepe-tiny"):
        if (TEST_DATA_DIR / "weights" / name).is_dir():
            (data / "weights" / name).symlink_to(TEST_DATA_DIR / "weights" / name)
    monkeypatch.setenv("VOCODER_DATA_DIR", str(data))
    monkeypatch.setenv("VOCODER_OFFLINE", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_the_page_has_the_promised_examples() -> None:
    text = PAGE.read_text(encoding="utf-8")
    blocks = python_blocks()
    assert len(blocks) >= 6
    for heading in ("vocode an acoustic model's mels", "validate a training run with pesq and pitch",
                    "score two folders into a plain table", "stream", "stability"):
        assert heading in text.lower(), heading
    assert 'device = "cuda" if torch.cuda.is_available() else "cpu"' in blocks[0]
    assert "DeprecationWarning" in text
    assert "import pandas" not in text and "pip install" not in "".join(blocks)
    assert "(docs/api.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_every_python_block_of_docs_api_runs_in_order(tiny_default: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "docs_api"}
    for number, block in enumerate(python_blocks(), start=1):
        exec(compile(block, f"{PAGE.name} block {number}", "exec"), namespace)  # noqa: S102 (the page's own code)
    printed = capsys.readouterr().out

    vocoder = namespace["vocoder"]
    assert vocoder.name == "hifigan-universal-v1" and vocoder.sample_rate == 22050  # type: ignore[attr-defined]
    # the acoustic-model example: one file per clip, exactly frames * hop samples at 22.05 kHz
    frames = namespace["frames"]
    for clip, n in zip(namespace["clips"], frames):  # type: ignore[call-overload]
        info = sf.info(tiny_default / "out" / f"{clip.stem}.wav")
        assert info.samplerate == 22050 and info.frames == n * 256
    # resynthesise: the three demo clips, no failures
    assert sorted(Path(p).name for p in namespace["result"].written) == [  # type: ignore[attr-defined]
        "agent-alreadyon.wav", "auth-incorrect.wav", "demo-echodone.wav"]
    # validation: PESQ and the three pitch keys, each a number or None with the reason in the rows
    assert set(namespace["scores"]) == {"pesq", "f0_rmse", "vuv_f1", "periodicity"}  # type: ignore[arg-type]
    # the plain table: a header, three rows and three summary lines
    assert "stoi" in printed and "mstft" in printed and printed.count("95% CI") == 2
    run = namespace["run"]
    assert [row["id"] for row in run.rows()] == ["agent-alreadyon", "auth-incorrect", "demo-echodone"]  # type: ignore[attr-defined]
    # streaming: the same number of samples as offline resynthesis at 16 kHz, in several blocks
    out = namespace["out"]
    assert len(out) > 10 and "algorithmic latency" in printed  # type: ignore[arg-type]
    # tts: two files, named by id
    assert sorted(Path(p).name for p in namespace["spoken"].written) == ["ask.wav", "greeting.wav"]  # type: ignore[attr-defined]
    assert printed.count("refused:") == 2

