"""vocoder_cli.outputs, the one rule every writing command follows: distinct output names, no existing file
replaced unless asked, no overlapping input and output trees; and the engine writing (and counting) each
output as its batch finishes."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path, PurePath

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import tiny_generator, tone, write
from vocoder_cli.mel import MelConfig
from vocoder_cli.outputs import (
    OVERWRITE,
    REFUSE,
    SKIP,
    WRITE,
    OutputError,
    OutputPolicy,
    check_output_folder,
    check_separate,
    claim_names,
    keep_extension,
    name_key,
)
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.resynthesis import (
    Job,
    Resynthesizer,
    ResynthOptions,
    plan_jobs,
)
from vocoder_cli.synthesis.vocoder import Vocoder, receptive_field_frames

SR = 22050


def claims_for(*names: str, ext: str = ".wav") -> list[str | None]:
    rels = [PurePath(n) for n in names]
    claims = claim_names([r.with_suffix(ext) for r in rels], [keep_extension(r, ext) for r in rels])
    return [None if c.name is None else str(c.name) for c in claims]


# -- names -----------------------------------------------------------------------------------------------


def test_extension_twins_both_keep_their_source_extension() -> None:
    assert claims_for("x.flac", "x.ogg", "y.wav") == ["x.flac.wav", "x.ogg.wav", "y.wav"]
    assert claims_for("x.wav", "x.flac") == ["x.wav.wav", "x.flac.wav"]  # neither keeps x.wav at the other's cost
    assert claims_for("sub/x.mp3", "sub/x.opus", "x.mp3") == ["sub/x.mp3.wav", "sub/x.opus.wav", "x.wav"]


def test_names_one_file_on_macos_or_windows_collide() -> None:
    assert claims_for("X.flac", "x.ogg") == ["X.flac.wav", "x.ogg.wav"]  # letter case
    assert claims_for("Sub/a.wav", "sub/a.flac") == ["Sub/a.wav.wav", "sub/a.flac.wav"]  # in a folder name too
    nfc, nfd = unicodedata.normalize("NFC", "caf\u00e9"), unicodedata.normalize("NFD", "caf\u00e9")
    assert claims_for(f"{nfc}.wav", f"{nfd}.flac") == [f"{nfc}.wav.wav", f"{nfd}.flac.wav"]  # composed accents
    assert name_key("track. /x.wav") == name_key("Track/X.wav") and name_key("a.wav.") == name_key("a.wav")
    assert name_key("a.wav") != name_key("b.wav") and name_key("a/b.wav") != name_key("ab.wav")


def test_inputs_no_renaming_can_separate_are_refused_naming_the_first() -> None:
    rels = [PurePath("A.wav"), PurePath("b.wav"), PurePath("a.wav")]
    claims = claim_names([r.with_suffix(".wav") for r in rels], [keep_extension(r, ".wav") for r in rels])
    assert [str(c.name) for c in claims[:2]] == ["A.wav", "b.wav"]
    assert claims[2].name is None and claims[2].clash == 0
    same = claim_names([PurePath("a.wav"), PurePath("a.wav")], [PurePath("a.wav.wav"), PurePath("a.wav.wav")])
    assert same[0].name == PurePath("a.wav") and same[1].name is None and same[1].clash == 0
    # without a fallback (tts ids), a collision refuses the later one at once
    ids = claim_names([PurePath("LJ001.wav"), PurePath("lj001.wav"), PurePath("LJ002.wav")])
    assert [c.name for c in ids] == [PurePath("LJ001.wav"), None, PurePath("LJ002.wav")] and ids[1].clash == 0


def test_renaming_that_collides_again_goes_on_until_nothing_does() -> None:
    # x.flac -> x.flac.wav collides with the input x.flac.wav's own name, which then keeps its extension too
    assert claims_for("x.flac", "x.ogg", "x.flac.wav") == ["x.flac.wav", "x.ogg.wav", "x.flac.wav.wav"]


NAME = st.text(alphabet="aAbB\u00e9e\u0301.", min_size=1, max_size=4).filter(lambda s: s.strip(".") != "")
EXT = st.sampled_from([".wav", ".flac", ".ogg", ".WAV", ".mp3"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(NAME, min_size=0, max_size=2), NAME, EXT), max_size=12))
def test_claims_are_distinct_deterministic_and_refuse_only_true_twins(spec: list) -> None:
    rels = [PurePath(*folders, stem + ext) for folders, stem, ext in spec]
    natural = [r.with_suffix(".wav") for r in rels]
    fallback = [keep_extension(r, ".wav") for r in rels]
    claims = claim_names(natural, fallback)
    assert claims == claim_names(natural, fallback)
    named = [name_key(c.name) for c in claims if c.name is not None]
    assert len(named) == len(set(named))  # no two outputs are one file anywhere
    for i, claim in enumerate(claims):
        if claim.name is None:  # refused only when even the whole source names are one file
            assert claim.clash is not None and claim.clash < i and claims[claim.clash].name is not None
            assert name_key(fallback[i]) == name_key(fallback[claim.clash])
        else:
            assert claim.name == (fallback[i] if claim.renamed else natural[i])


# -- existing files ----------------------------------------------------------------------------------------


def test_policy_decides_per_item_and_flags_are_exclusive(tmp_path: Path) -> None:
    wav, npy = tmp_path / "a.wav", tmp_path / "a.npy"
    assert OutputPolicy().decide([wav, npy]).action == WRITE
    wav.write_bytes(b"a recording")
    refused = OutputPolicy().decide([wav])
    assert refused.action == REFUSE and str(wav) in refused.reason and "--overwrite" in refused.reason
    assert "--skip-existing" in refused.reason
    assert OutputPolicy(OVERWRITE).decide([wav]).action == WRITE
    assert OutputPolicy(SKIP).decide([wav]).action == SKIP
    partial = OutputPolicy(SKIP).decide([wav, npy])  # resuming would replace a.wav to write a.npy
    assert partial.action == REFUSE and f"{npy} does not" in partial.reason
    npy.write_bytes(b"x")
    assert OutputPolicy(SKIP).decide([wav, npy]).action == SKIP
    assert OutputPolicy().decide(["-"]).action == WRITE  # stdout is never "existing"
    (tmp_path / "link.wav").symlink_to(tmp_path / "gone.wav")  # a dangling link is still a file to lose
    assert OutputPolicy().decide([tmp_path / "link.wav"]).action == REFUSE
    assert OutputPolicy.from_flags(overwrite=True) == OutputPolicy(OVERWRITE)
    assert OutputPolicy.from_flags(skip_existing=True) == OutputPolicy(SKIP)
    with pytest.raises(OutputError, match="contradict"):
        OutputPolicy.from_flags(overwrite=True, skip_existing=True)
    with pytest.raises(OutputError, match="add --overwrite"):
        OutputPolicy().check_single([wav])


def test_whole_folder_outputs_refuse_foreign_non_empty_folders(tmp_path: Path) -> None:
    def never(_: Path) -> bool:
        return False

    check_output_folder(tmp_path / "new", OutputPolicy(), never, "vocoder prepare")
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", OutputPolicy(), never, "vocoder prepare")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="was not written by vocoder prepare.*--overwrite"):
        check_output_folder(tmp_path / "full", OutputPolicy(), never, "vocoder prepare")
    check_output_folder(tmp_path / "full", OutputPolicy(OVERWRITE), never, "vocoder prepare")
    check_output_folder(tmp_path / "full", OutputPolicy(), lambda p: (p / "mine.txt").is_file(), "vocoder prepare")
    with pytest.raises(OutputError, match="not a folder"):
        check_output_folder(tmp_path / "full" / "mine.txt", OutputPolicy(OVERWRITE), never, "vocoder prepare")


# -- overlapping trees --------------------------------------------------------------------------------------


def test_overlapping_trees_are_refused_both_ways_links_resolved(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    clip = src / "a.wav"
    clip.write_bytes(b"x")
    (tmp_path / "link").symlink_to(src, target_is_directory=True)
    cases = {
        (str(src), str(src)): "same folder",
        (str(src), str(src / "out")): "is inside input folder",
        (str(src / "sub"), str(src)): "is inside output folder",
        (str(src), str(tmp_path / "link" / "out")): "is inside input folder",
        (str(tmp_path / "link"), str(src)): "same folder",
        (str(clip), str(src)): "is inside output folder",  # an input file its own output could replace
    }
    for (inp, out), words in cases.items():
        with pytest.raises(OutputError, match=words) as info:
            check_separate([inp], out)
        assert inp in str(info.value) and out in str(info.value)
    with pytest.raises(OutputError, match="really"):  # the real place behind the link is shown
        check_separate([str(src)], str(tmp_path / "link" / "out"))
    with pytest.raises(OutputError, match="same file"):
        check_separate([str(clip)], str(tmp_path / "link" / "a.wav"), output_is_folder=False)
    with pytest.raises(OutputError, match="inside input folder"):  # a single output file inside an input tree
        check_separate([str(src)], str(src / "sub" / "x.wav"), output_is_folder=False)
    check_separate([str(src)], str(tmp_path / "elsewhere"))
    check_separate([str(src / "sub")], str(src / "subfolder"))  # a shared name prefix is not containment
    check_separate([str(clip)], str(src / "b.wav"), output_is_folder=False)  # a named file beside its input
    check_separate(["-", str(tmp_path / "missing.wav")], str(src))  # stdin, and a missing input's own failure


# -- the engine writes and counts each output as its batch finishes ---------------------------------------


def _synth(batch_size: int, chunk_frames: int = 2048) -> Synthesizer:
    gen = tiny_generator()
    vocoder = Vocoder(gen, MelConfig(), "tiny", receptive_field_frames(gen.cfg) + 2)
    return Synthesizer(vocoder, options=EngineOptions(batch_size=batch_size, chunk_frames=chunk_frames))


def test_outputs_are_written_and_counted_batch_by_batch(tmp_path: Path) -> None:
    for i, seconds in enumerate((0.5, 0.6, 0.7)):
        write(tmp_path / "in" / f"{i}.wav", tone(seconds, SR, freq=200 + 40 * i), SR)
    synth = _synth(batch_size=1)
    calls = []
    synth.model.register_forward_hook(lambda *_: calls.append(1))
    seen = []

    def on_done(job: Job) -> None:  # what exists, and how many generator calls ran, when each job is done
        seen.append((len(calls), sorted(p.name for p in (tmp_path / "out").glob("*.wav"))))

    jobs = plan_jobs([str(tmp_path / "in")], str(tmp_path / "out"))
    report, _ = Resynthesizer(synth, ResynthOptions()).run(jobs, on_done=on_done)
    assert len(report.written) == 3
    # each output is written (and the bar moves) right after its own generator call, not after the group
    assert seen == [(1, ["0.wav"]), (2, ["0.wav", "1.wav"]), (3, ["0.wav", "1.wav", "2.wav"])]


def test_progress_counts_items_with_fractions_while_a_long_input_is_chunked(tmp_path: Path) -> None:
    write(tmp_path / "in" / "long.wav", tone(6.0, SR), SR)  # 516 frames: 5 chunks of 128
    write(tmp_path / "in" / "short.wav", tone(0.5, SR), SR)
    (tmp_path / "in" / "bad.wav").write_bytes(b"")
    write(tmp_path / "out" / "short.wav", tone(0.1, SR), SR)  # exists: refused, still one step
    completed: list[float] = []
    jobs = plan_jobs([str(tmp_path / "in")], str(tmp_path / "out"))
    report, _ = Resynthesizer(_synth(batch_size=8, chunk_frames=128), ResynthOptions()).run(
        jobs, on_progress=completed.append
    )
    assert len(report.written) == len(report.refused) == len(report.failures) == 1
    assert completed == sorted(completed) and completed[-1] == 3  # never backwards, ends exactly at the items
    chunks = [c for c in completed if c != int(c)]
    assert len(chunks) >= 4 and all(2 < c < 3 for c in chunks)  # the long file moved the bar chunk by chunk
    assert sf.info(tmp_path / "out" / "long.wav").frames == int(6.0 * SR) // 256 * 256


def test_refusal_is_asked_again_just_before_writing(tmp_path: Path) -> None:
    """A file that appears while the batch runs (another program, another run) is not replaced either."""
    for name in ("a", "b"):
        write(tmp_path / "in" / f"{name}.wav", tone(0.5, SR), SR)
    synth = _synth(batch_size=1)
    out = tmp_path / "out"

    def appear(*_: object) -> None:
        if not (out / "b.wav").exists():
            out.mkdir(exist_ok=True)
            (out / "b.wav").write_bytes(b"written by someone else meanwhile")

    synth.model.register_forward_hook(appear)
    report, _ = Resynthesizer(synth, ResynthOptions()).run(plan_jobs([str(tmp_path / "in")], str(out)))
    assert report.written == [str(out / "a.wav")]
    assert [f.source for f in report.refused] == [str(tmp_path / "in" / "b.wav")]
    assert (out / "b.wav").read_bytes() == b"written by someone else meanwhile"
    assert np.abs(sf.read(out / "a.wav")[0]).max() > 0.01
    assert os.listdir(out) and not list(out.glob("*.part"))
