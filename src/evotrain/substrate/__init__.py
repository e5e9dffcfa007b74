"""The substrate: a training stack declared by `evotrain.toml`, snapshotted read-only at `init`."""

from evotrain.substrate.spec import SPEC_FILENAME, SubstrateSpec, load_spec

__all__ = ["SPEC_FILENAME", "SubstrateSpec", "load_spec"]
