"""Report what a reader finds in a dataset file: ``python -m pdeop.data.formats <file> [--format F]``."""

from __future__ import annotations

import argparse
import json

from pdeop.data.formats import FORMATS, open_dataset
from pdeop.errors import DataFileError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    parser.add_argument("--inputs")
    parser.add_argument("--outputs")
    args = parser.parse_args()
    try:
        dataset = open_dataset(args.path, args.format, args.inputs, args.outputs)
    except DataFileError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(dataset.describe())
    if dataset.attrs:
        print("  attributes: " + json.dumps({k: str(v) for k, v in dataset.attrs.items()}))
    dataset.close()


if __name__ == "__main__":
    main()
