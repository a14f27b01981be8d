"""Our Tacotron2 network against torchaudio's, on random weights in torchaudio's key layout.

``tests/data/tacotron2_tiny_torchaudio.safetensors`` holds a tiny random torchaudio Tacotron2 (its state
dict as torchaudio saved it), a batch of token ids, every prenet dropout mask torchaudio drew and its
outputs, written by ``scripts/check_tacotron2_equivalence.py --write-fixture`` (torchaudio 2.9.1). Replaying
the masks makes both sides deterministic, so our network must reproduce torchaudio's numbers without
torchaudio installed. The same script checks the full-size LJSpeech configuration (docs/tts.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from vocoder_cli.errors import WeightsError
from vocoder_cli.tts.base import LoadOptions
from vocoder_cli.tts.tacotron2 import Tacotron2, Tacotron2Config
from vocoder_cli.tts.tacotron2_lj import (
    MEL_CONFIG,
    WEIGHTS_URL,
    Tacotron2LJ,
    build_network,
    config_from_state,
    encode,
    load_state_dict,
    weights_path,
)
from vocoder_cli.weights import registry

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FIXTURE = Path(__file__).parent / "data" / "tacotron2_tiny_torchaudio.safetensors"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    with safe_open(str(FIXTURE), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    return {"tensors": tensors, "config": json.loads(meta["config"]), "shapes": json.loads(meta["mask_shapes"])}


def _state(reference: dict[str, object]) -> dict[str, torch.Tensor]:
    tensors = reference["tensors"]
    assert isinstance(tensors, dict)
    return {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}


@pytest.fixture()
def replay_dropout(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[torch.Tensor]]:
    """F.dropout replays the masks put in the yielded list (and fails if a call has no mask left)."""
    masks: list[torch.Tensor] = []

    def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
        if not training or p == 0.0:
            return x
        mask = masks.pop(0)
        assert mask.shape == x.shape, "dropout called in a different order or shape than torchaudio"
        return x * mask / (1.0 - p)

    monkeypatch.setattr(torch.nn.functional, "dropout", dropout)
    yield masks


def _masks(reference: dict[str, object], run: str) -> list[torch.Tensor]:
    flat = reference["tensors"][f"{run}.masks"].float()  # type: ignore[index]
    out, start = [], 0
    for shape in reference["shapes"][run]:  # type: ignore[index]
        n = int(torch.tensor(shape).prod())
        out.append(flat[start : start + n].reshape(shape))
        start += n
    return out


@pytest.mark.parametrize("run", ["stop", "guard"])
def test_infer_reproduces_torchaudio(
    reference: dict[str, object], replay_dropout: list[torch.Tensor], run: str
) -> None:
    state = _state(reference)
    net = Tacotron2(config_from_state(state)).eval()
    net.load_state_dict(state, strict=True)  # torchaudio's key layout, as saved by torchaudio
    cfg = reference["config"]
    assert isinstance(cfg, dict)
    net.cfg = Tacotron2Config(**{**net.cfg.to_dict(), "decoder_max_step": cfg["decoder_max_step"]})
    net.decoder.cfg = net.cfg
    if run == "guard":
        net.decoder.gate_layer.bias.data.fill_(-1e4)
    replay_dropout.extend(_masks(reference, run))
    t = reference["tensors"]
    assert isinstance(t, dict)
    with torch.inference_mode():
        out = net.infer(t["input.tokens"], t["input.lengths"])
    assert not replay_dropout, "torchaudio drew more dropout masks than we did"
    assert torch.equal(out.lengths, t[f"{run}.lengths"])
    assert out.mels.shape == t[f"{run}.mels"].shape
    assert (out.mels - t[f"{run}.mels"]).abs().max() <= TOLERANCE
    assert (out.alignments - t[f"{run}.alignments"]).abs().max() <= TOLERANCE
    assert (out.gates - t[f"{run}.gates"]).abs().max() <= TOLERANCE
    if run == "guard":
        assert out.lengths.tolist() == [cfg["decoder_max_step"]] * 3 and not out.stopped.any()
    else:
        assert out.stopped.all() and int(out.lengths.max()) < cfg["decoder_max_step"]


def test_full_size_network_has_torchaudios_ljspeech_shape() -> None:
    net = Tacotron2(Tacotron2Config())
    state = net.state_dict()
    # torchaudio's Tacotron2(**_get_taco_params(38)): 84 tensors, 28,136,833 parameters
    assert len(state) == 84 and sum(p.numel() for p in net.parameters()) == 28_136_833
    assert state["embedding.weight"].shape == (38, 512)
    assert state["decoder.attention_layer.location_layer.location_conv.weight"].shape == (32, 2, 31)
    assert state["postnet.convolutions.4.1.running_var"].shape == (80,)
    assert config_from_state(state) == Tacotron2Config()


def _random_lj_state(gate_bias: float, tiny: bool = True) -> dict[str, torch.Tensor]:
    cfg = Tacotron2Config(
        symbol_embedding_dim=16, encoder_embedding_dim=16, decoder_rnn_dim=24, attention_rnn_dim=24,
        attention_hidden_dim=8, attention_location_n_filter=4, prenet_dim=16, postnet_embedding_dim=16,
    ) if tiny else Tacotron2Config()  # fmt: skip
    torch.manual_seed(0)
    net = Tacotron2(cfg)
    with torch.no_grad():
        net.decoder.gate_layer.weight.zero_()
        net.decoder.gate_layer.bias.fill_(gate_bias)
        net.decoder.linear_projection.bias.fill_(-4.0)  # a plausible log-mel level
    return net.state_dict()


def test_trimmed_inference_does_not_depend_on_batch_mates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.nn.functional, "dropout", lambda x, p=0.5, training=True, inplace=False: x)
    net = build_network(_random_lj_state(gate_bias=-1e4))
    texts = [encode("a much longer sentence than the other."), encode("short.")]
    tokens = torch.zeros(2, len(texts[0]), dtype=torch.int64)
    for row, ids in enumerate(texts):
        tokens[row, : len(ids)] = torch.tensor(ids)
    with torch.inference_mode():
        batched, stopped = net.infer_trimmed(tokens, torch.tensor([len(t) for t in texts]), max_steps=25)
        alone, _ = net.infer_trimmed(torch.tensor([texts[1]]), None, max_steps=25)
    assert stopped == [False, False]
    assert batched[1].shape == alone[0].shape == (80, 25)
    assert (batched[1] - alone[0]).abs().max() < 1e-5


def test_model_reports_the_max_length_guard_and_stops_early_when_the_gate_fires() -> None:
    never = Tacotron2LJ(build_network(_random_lj_state(-1e4)), max_steps=12)
    at_once = Tacotron2LJ(build_network(_random_lj_state(+1e4)), max_steps=12)
    (cut,) = never.infer(["hello there."])
    (done,) = at_once.infer(["hello there."])
    assert cut.reached_max_length and cut.mel.shape == (80, 12)
    assert not done.reached_max_length and done.mel.shape == (80, 1)
    assert never.mel_config == MEL_CONFIG and MEL_CONFIG.center and MEL_CONFIG.mag_eps == 0.0
    a, b = never.infer(["hello there."])[0].mel, never.infer(["hello there."])[0].mel
    assert torch.equal(a, b)  # the prenet dropout is seeded: same text, same mel


def test_checkpoints_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    state = _random_lj_state(0.0)
    wrong = dict(state, **{"embedding.weight": torch.zeros(96, 16)})
    with pytest.raises(WeightsError, match="38-symbol character model"):
        build_network(wrong)
    missing = {k: v for k, v in state.items() if "postnet.convolutions.1.1" not in k}
    with pytest.raises(WeightsError, match="layout"):
        build_network(missing)
    with pytest.raises(WeightsError, match="no embedding.weight"):
        build_network({"x": torch.zeros(1)})
    path = tmp_path / "t.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    assert set(load_state_dict(path)) == set(state)  # a wrapped, DataParallel-prefixed copy loads too
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable Tacotron2 checkpoint"):
        load_state_dict(tmp_path / "junk.pth")


def test_registry_entry_is_honest() -> None:
    entry = registry.lookup("tacotron2-lj")
    assert entry is not None and entry.kind == "acoustic"
    assert (
        entry.url
        == WEIGHTS_URL
        == ("https://download.pytorch.org/torchaudio/models/tacotron2_english_characters_1500_epochs_ljspeech.pth")
    )
    assert entry.sha256 is None and entry.source_kind == "url"  # torchaudio publishes no checksum


def test_weights_are_pulled_on_first_use_only_unverified_and_online(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VOCODER_OFFLINE", raising=False)
    mirror = tmp_path / "mirror.pth"
    torch.save(_random_lj_state(0.0), mirror)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "registry.json").write_text(
        json.dumps({"weights": [{"name": "tacotron2-lj", "url": mirror.as_uri(), "kind": "acoustic",
                                 "file_name": "tacotron2_english_characters_1500_epochs_ljspeech.pth"}]})
    )  # fmt: skip
    opts = dict(target_mel=MEL_CONFIG)
    with pytest.raises(WeightsError, match="offline"):
        weights_path(LoadOptions(**opts, offline=True))
    with pytest.raises(WeightsError, match="--no-verify"):
        weights_path(LoadOptions(**opts))
    notes: list[str] = []
    path = weights_path(LoadOptions(**opts, verify=False, notify=notes.append))
    assert path.is_file() and path.read_bytes() == mirror.read_bytes() and "tacotron2-lj" in notes[0]
    mirror.unlink()
    assert weights_path(LoadOptions(**opts, offline=True)) == path  # cached: no network, even offline
