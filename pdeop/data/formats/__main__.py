"""Report what a reader finds where ``data=from_file data.path=<path>`` would read:
``python -m pdeop.data.formats <file or folder> [--format F] [--inputs K] [--outputs K] [--axes '{...}']``.

A file or a folder of files is one dataset; The Well's dataset folder is reported per split
(``data/train``, ``data/valid``, ``data/test``), as training reads it. ``--axes`` takes what
``data.axes`` takes, e.g. ``--axes '{outputs: [sample, time, x]}'``.
"""

from __future__ import annotations

import argparse
import json

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from pdeop.data.formats import FORMATS, DatasetCollection, ExternalDataset, open_splits, split_paths
from pdeop.data.formats.dataset import AXES_EXAMPLE
from pdeop.errors import ConfigError, first_line, report_user_errors


def parse_axes(text: str | None) -> dict | None:
    """``--axes`` in ``data.axes``'s syntax (a Hydra override value) as a dict of axis-name lists."""
    if text is None:
        return None
    try:
        value = OverridesParser.create().parse_override(f"axes={text}").value()
    except HydraException as exc:
        raise ConfigError(f"--axes: cannot parse {text!r} ({first_line(exc)}); expected e.g. "
                          f"--axes '{AXES_EXAMPLE}'") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--axes: expected a mapping of inputs/outputs to axis names, got {text!r}; e.g. "
                          f"--axes '{AXES_EXAMPLE}'")
    return value


def describe(path: str, **options) -> str:
    """What ``open_splits`` finds: one dataset, or each split that has a file or folder of its own."""
    opened = open_splits(split_paths(path), **options)
    try:
        if len(opened) == 1:
            return describe_one(opened["train"])
        return "\n".join(f"split '{split}': " + describe_one(dataset) for split, dataset in opened.items())
    finally:
        for dataset in opened.values():
            dataset.close()


def describe_one(dataset: ExternalDataset | DatasetCollection) -> str:
    attrs = {k: str(v) for k, v in dataset.attrs.items()}
    return dataset.describe() + (f"\n  attributes: {json.dumps(attrs)}" if attrs else "")


@report_user_errors
def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pdeop.data.formats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a dataset file, a folder of files, or The Well's dataset folder")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    parser.add_argument("--inputs", help="the input array's key (data.inputs)")
    parser.add_argument("--outputs", help="the output array's key (data.outputs)")
    parser.add_argument("--axes", help=f"axis names of the arrays (data.axes), e.g. '{AXES_EXAMPLE}'")
    args = parser.parse_args()
    print(describe(args.path, format=args.format, inputs=args.inputs, outputs=args.outputs,
                   axes=parse_axes(args.axes)))


if __name__ == "__main__":
    main()
