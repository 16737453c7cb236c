"""Train a neural operator from a checkout: `python train.py model=fno data=darcy [key=value ...]`; installed, the
same entry is `pdeop-train` (pdeop/train.py)."""

from pdeop.train import main

if __name__ == "__main__":
    main()
