"""Dataset preparation (LJSpeech, any folder), JSONL manifests and segment sampling for training."""

from vocoder_cli.data.manifest import (
    ManifestEntry,
    read_manifest,
    split_train_val,
    write_manifest,
)

__all__ = ["ManifestEntry", "read_manifest", "split_train_val", "write_manifest"]
