"""The runtimed daemon: socket server, env pools, and (later) rooms, kernels and blobs."""
