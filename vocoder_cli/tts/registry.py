"""Every acoustic model by the name used with ``--acoustic``: built-ins plus plug-ins.

Other packages add models without touching this one through the entry-point group ``vocoder.acoustic``::

    [project.entry-points."vocoder.acoustic"]
    my-model = "my_package.tts:spec"      # an AcousticSpec, or a factory(LoadOptions) -> AcousticModel

A plug-in that fails to import is listed with its error and only fails when chosen; a plug-in cannot
replace a built-in name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from vocoder_cli.errors import ConfigError
from vocoder_cli.tts.base import AcousticModel, LoadOptions

ENTRY_POINT_GROUP = "vocoder.acoustic"
DEFAULT_ACOUSTIC = "espeak"


@dataclass(frozen=True)
class AcousticSpec:
    """A name, one line for ``--help`` and listings, and the factory that builds the model."""

    name: str
    description: str
    load: Callable[[LoadOptions], AcousticModel]
    needs_download: bool = False
    origin: str = "builtin"  # builtin | the entry point's "module:object"
    # Checks --acoustic-opt values before anything loads (raises ConfigError); None: the factory checks them.
    check_options: Callable[[dict[str, str]], object] | None = None


def _load_espeak(options: LoadOptions) -> AcousticModel:
    from vocoder_cli.tts import espeak

    return espeak.load(options)


def _load_tacotron2_lj(options: LoadOptions) -> AcousticModel:
    from vocoder_cli.tts import tacotron2_lj

    return tacotron2_lj.load(options)


def _check_espeak(options: dict[str, str]) -> object:
    from vocoder_cli.tts import espeak

    return espeak.parse_options(options)


def _check_tacotron2_lj(options: dict[str, str]) -> object:
    from vocoder_cli.tts import tacotron2_lj

    return tacotron2_lj.parse_options(options)


BUILTIN: tuple[AcousticSpec, ...] = (
    AcousticSpec(
        "espeak",
        "eSpeak NG formant synthesis (offline, no download; intelligible, robotic), "
        "turned into the vocoder's mels by our mel frontend. Options: voice, rate, pitch",
        _load_espeak,
        check_options=_check_espeak,
    ),
    AcousticSpec(
        "tacotron2-lj",
        "Tacotron2 (torchaudio's LJSpeech character model, ~113 MB, pulled on first use with --no-verify: "
        "no published sha256). Options: max_steps, max_chars",
        _load_tacotron2_lj,
        needs_download=True,
        check_options=_check_tacotron2_lj,
    ),
)


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    origin: str
    error: str


def _from_entry_point(ep: metadata.EntryPoint) -> AcousticSpec:
    obj = ep.load()
    if isinstance(obj, AcousticSpec):
        return obj
    if callable(obj):
        doc = (getattr(obj, "__doc__", None) or "plug-in acoustic model").strip().splitlines()[0]
        return AcousticSpec(ep.name, doc, obj, origin=ep.value)
    raise TypeError(f"{ep.value} is neither an AcousticSpec nor a factory")


def plugins() -> tuple[list[AcousticSpec], list[BrokenPlugin]]:
    """Models from the ``vocoder.acoustic`` entry points, and those that failed to load."""
    good, broken = [], []
    builtin = {spec.name for spec in BUILTIN}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in builtin:
            broken.append(BrokenPlugin(ep.name, ep.value, "a plug-in cannot replace a built-in acoustic model"))
            continue
        try:
            spec = _from_entry_point(ep)
        except Exception as exc:  # noqa: BLE001 (a broken plug-in must not break the CLI)
            broken.append(BrokenPlugin(ep.name, ep.value, f"{exc.__class__.__name__}: {exc}"))
        else:
            good.append(
                AcousticSpec(ep.name, spec.description, spec.load, spec.needs_download, ep.value, spec.check_options)
            )
    return good, broken


def available() -> dict[str, AcousticSpec]:
    found, _ = plugins()
    return {spec.name: spec for spec in (*BUILTIN, *found)}


def get_spec(name: str) -> AcousticSpec:
    specs = available()
    if name in specs:
        return specs[name]
    for broken in plugins()[1]:
        if broken.name == name:
            raise ConfigError(f"acoustic model {name!r} ({broken.origin}) cannot be loaded: {broken.error}")
    raise ConfigError(f"unknown acoustic model {name!r}; known: {', '.join(specs)}")


def check_acoustic_options(name: str, options: dict[str, str]) -> None:
    """Refuse an unknown model, or options it does not accept, before anything loads (ConfigError)."""
    spec = get_spec(name)
    if spec.check_options is not None:
        spec.check_options(options)


def load_acoustic(name: str, options: LoadOptions) -> AcousticModel:
    """Build the named model; the result is checked against the protocol (a plug-in's mistake is named)."""
    model = get_spec(name).load(options)
    missing = [attr for attr in ("name", "mel_config", "max_chars", "prepare", "infer") if not hasattr(model, attr)]
    if missing:
        raise ConfigError(f"acoustic model {name!r} does not follow the protocol (missing {', '.join(missing)})")
    return model
