"""Predictions of a trained run from a checkout: `python predict.py ckpt=<path> [data=<name>] [out=pred.nc]`;
installed, the same entry is `pdeop-predict` (pdeop/predict.py)."""

from pdeop.predict import main

if __name__ == "__main__":
    main()
