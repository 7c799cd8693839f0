"""Convert basicsr 1.4.2's niqe_pris_params.npz into the .mat file pyiqa's NIQE reads.

    pip download basicsr==1.4.2 --no-deps --no-binary basicsr --no-build-isolation -d /tmp/bsr
    tar xzf /tmp/bsr/basicsr-1.4.2.tar.gz -C /tmp/bsr
    python scripts/make_niqe_params.py /tmp/bsr/basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz
"""

import sys

import numpy as np
import scipy.io

src = np.load(sys.argv[1])
scipy.io.savemat("patchscaler_lite/assets/niqe_modelparameters.mat",
                 {"mu_prisparam": src["mu_pris_param"], "cov_prisparam": src["cov_pris_param"]})
