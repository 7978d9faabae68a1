"""`actorcore.util.accelerators`: the GPU model names the ``accelerator_type`` option takes,
under Ray's constant names (``accelerator_type=NVIDIA_TESLA_V100``).

A node with NVIDIA GPUs offers one ``accelerator_type:<model>`` resource named from what
``nvidia-smi -L`` reports (see `actorcore.node_resources`); these are the models' names.
"""

from __future__ import annotations

__all__ = [
    "NVIDIA_A100", "NVIDIA_A100_40G", "NVIDIA_A100_80G", "NVIDIA_B200", "NVIDIA_B300",
    "NVIDIA_GB200", "NVIDIA_GB300", "NVIDIA_H20", "NVIDIA_H100", "NVIDIA_H200", "NVIDIA_L4",
    "NVIDIA_L40S", "NVIDIA_RTX_PRO_6000", "NVIDIA_TESLA_A10G", "NVIDIA_TESLA_K80",
    "NVIDIA_TESLA_P4", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_T4", "NVIDIA_TESLA_V100",
]

NVIDIA_TESLA_V100 = "V100"
NVIDIA_TESLA_P100 = "P100"
NVIDIA_TESLA_T4 = "T4"
NVIDIA_TESLA_P4 = "P4"
NVIDIA_TESLA_K80 = "K80"
NVIDIA_TESLA_A10G = "A10G"
NVIDIA_L4 = "L4"
NVIDIA_L40S = "L40S"
NVIDIA_A100 = "A100"
NVIDIA_A100_40G = "A100-40G"
NVIDIA_A100_80G = "A100-80G"
NVIDIA_H100 = "H100"
NVIDIA_H200 = "H200"
NVIDIA_H20 = "H20"
NVIDIA_B200 = "B200"
NVIDIA_B300 = "B300"
NVIDIA_GB200 = "GB200"
NVIDIA_GB300 = "GB300"
NVIDIA_RTX_PRO_6000 = "RTX-PRO-6000"
