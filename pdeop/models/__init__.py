"""Neural operators: plain ``nn.Module``s mapping ``[batch, channels, *grid]`` to the same; and the
physics-informed solution models (PINN, PIG, GP-HM) representing one solution u(x).

No model knows about Lightning, files or configs. FNO is neuraloperator's own
(``neuralop.models.FNO``, configured in ``pdeop/conf/model/fno.yaml``).
"""

from pdeop.models.gp_hm import GPHM
from pdeop.models.lsm import LSM
from pdeop.models.mgno import MgNO
from pdeop.models.pig import PIG
from pdeop.models.pinn import PINN
from pdeop.models.scot import ScOT
from pdeop.models.t1 import T1
from pdeop.models.unet import UNet

__all__ = ["GPHM", "LSM", "MgNO", "PIG", "PINN", "ScOT", "T1", "UNet"]
