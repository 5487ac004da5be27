"""Prewarmed environment pools: one state machine (EnvPool), one builder per env type."""

from runtimed.daemon.envs.build_step import BuildFailure
from runtimed.daemon.envs.env_pool import EnvPool, PoolSettings
from runtimed.daemon.envs.uv_builder import UvEnvBuilder

__all__ = ["BuildFailure", "EnvPool", "PoolSettings", "UvEnvBuilder"]
