"""Prewarmed environment pools: one state machine (EnvPool), one builder per env type."""

from runtimed.daemon.pool.build_step import BuildFailure
from runtimed.daemon.pool.env_pool import EnvPool, PoolSettings
from runtimed.daemon.pool.uv_builder import UvEnvBuilder

__all__ = ["BuildFailure", "EnvPool", "PoolSettings", "UvEnvBuilder"]
