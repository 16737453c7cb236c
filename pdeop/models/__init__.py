"""Neural operators: plain ``nn.Module``s mapping ``[batch, channels, *grid]`` to the same.

No model knows about Lightning, files or configs. FNO is neuraloperator's own
(``neuralop.models.FNO``, configured in ``conf/model/fno.yaml``).
"""

from pdeop.models.lsm import LSM
from pdeop.models.mgno import MgNO
from pdeop.models.scot import ScOT
from pdeop.models.t1 import T1

__all__ = ["LSM", "MgNO", "ScOT", "T1"]
