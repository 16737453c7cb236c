"""Evaluate a trained run from a checkout: `python evaluate.py ckpt=<path> [data=<name>]`; installed, the same entry
is `pdeop-evaluate` (pdeop/evaluate.py)."""

from pdeop.evaluate import main

if __name__ == "__main__":
    main()
