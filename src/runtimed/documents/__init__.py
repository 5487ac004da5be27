"""CRDT documents shared by the daemon and its clients: notebook, runtime, settings."""
