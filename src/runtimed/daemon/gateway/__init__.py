"""Kernels on a Jupyter Kernel Gateway / Enterprise Gateway (docs/gateway.md)."""
