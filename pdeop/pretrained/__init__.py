"""Trained models in and out: checkpoints, exported bundles, the registry of named bundles, fine-tuning sources."""

from pdeop.pretrained.bundle import bundle_digest, read_bundle, verify_bundle, write_bundle
from pdeop.pretrained.checkpoint import CheckpointError, load_checkpoint, load_weights
from pdeop.pretrained.load import Source, load_pretrained, pretrained_weights, resolve
from pdeop.pretrained.registry import RegistryError, cache_dir, registry

__all__ = ["CheckpointError", "RegistryError", "Source", "bundle_digest", "cache_dir", "load_checkpoint",
           "load_pretrained", "load_weights", "pretrained_weights", "read_bundle", "registry", "resolve",
           "verify_bundle", "write_bundle"]
