"""The daemon as the frontend of its kernels' comms: ipywidgets models per room."""
