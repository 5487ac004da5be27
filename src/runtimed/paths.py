"""Where runtimed keeps its files, and the validation of names that become paths."""

from __future__ import annotations

import os
import re
from pathlib import Path

CACHE_DIR_ENV = "RUNTIMED_CACHE_DIR"
SOCKET_PATH_ENV = "RUNTIMED_SOCKET_PATH"
CONFIG_DIR_ENV = "RUNTIMED_CONFIG_DIR"

_ENV_ID = re.compile(r"^[0-9a-z]{6,40}$")


def default_cache_dir() -> Path:
    """`RUNTIMED_CACHE_DIR`, else the platform cache dir (``~/.cache/runt`` on Linux)."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser().absolute()
    import platformdirs  # on first use: ~15 ms of every client's start otherwise

    return Path(platformdirs.user_cache_dir("runt")).absolute()


def default_config_dir() -> Path:
    """`RUNTIMED_CONFIG_DIR`, else the platform config dir (``~/.config/runt`` on Linux)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_config_dir("runt")).absolute()


def default_socket_path(cache_dir: Path | None = None) -> Path:
    """`RUNTIMED_SOCKET_PATH`, else ``<cache dir>/runtimed.sock``."""
    override = os.environ.get(SOCKET_PATH_ENV)
    if override:
        return Path(override).expanduser().absolute()
    return (cache_dir or default_cache_dir()) / "runtimed.sock"


def ensure_private_dir(path: Path, tighten: bool = True) -> Path:
    """Create ``path`` (and parents) with mode 0700. With ``tighten``, an existing dir of
    ours that is open to others is closed to 0700 (only for dirs runtimed owns outright)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if tighten and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def is_valid_env_id(env_id: str) -> bool:
    """Env ids are short lowercase alphanumerics: nothing that could escape a directory."""
    return bool(_ENV_ID.match(env_id))


class RuntimePaths:
    """Every file the daemon owns, derived from one cache dir and one socket path.

    A plain class, not a frozen dataclass: every CLI command imports this module, and
    ``dataclasses`` (which imports ``inspect``) took ~20 ms of a ~75 ms ``runt ps``."""

    __slots__ = ("cache_dir", "socket_path")

    def __init__(self, cache_dir: Path, socket_path: Path) -> None:
        self.cache_dir = cache_dir
        self.socket_path = socket_path

    def __repr__(self) -> str:
        return f"RuntimePaths(cache_dir={self.cache_dir!r}, socket_path={self.socket_path!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuntimePaths):
            return NotImplemented
        return (self.cache_dir, self.socket_path) == (other.cache_dir, other.socket_path)

    def __hash__(self) -> int:
        return hash((self.cache_dir, self.socket_path))

    @classmethod
    def resolve(
        cls, cache_dir: str | Path | None = None, socket_path: str | Path | None = None
    ) -> RuntimePaths:
        """Apply the precedence: explicit argument, then environment, then platform default."""
        cache = Path(cache_dir).expanduser().absolute() if cache_dir else default_cache_dir()
        if socket_path:
            sock = Path(socket_path).expanduser().absolute()
        elif cache_dir:
            sock = cache / "runtimed.sock"
        else:
            sock = default_socket_path(cache)
        return cls(cache_dir=cache, socket_path=sock)

    @property
    def lock_file(self) -> Path:
        return self.cache_dir / "daemon.lock"

    @property
    def info_file(self) -> Path:
        return self.cache_dir / "daemon.json"

    @property
    def log_file(self) -> Path:
        return self.cache_dir / "runtimed.log"

    @property
    def envs_dir(self) -> Path:
        return self.cache_dir / "envs"

    @property
    def inline_envs_dir(self) -> Path:
        return self.cache_dir / "inline-envs"

    @property
    def notebook_docs_dir(self) -> Path:
        return self.cache_dir / "notebook-docs"

    @property
    def blobs_dir(self) -> Path:
        return self.cache_dir / "blobs"

    @property
    def history_file(self) -> Path:
        """Execution history (SQLite, WAL)."""
        return self.cache_dir / "history.sqlite"

    @property
    def kernels_dir(self) -> Path:
        return self.cache_dir / "kernels"

    @property
    def conda_pkgs_dir(self) -> Path:
        return self.cache_dir / "conda-pkgs"

    @property
    def repodata_cache_dir(self) -> Path:
        return self.cache_dir / "repodata"

    def prepare(self) -> None:
        """Create the private directories the daemon writes into."""
        ensure_private_dir(self.cache_dir)
        # A --socket elsewhere (say ~/x.sock) must not chmod that dir: the socket is 0600.
        ensure_private_dir(
            self.socket_path.parent, tighten=self.socket_path.parent == self.cache_dir
        )
        ensure_private_dir(self.envs_dir)


#: The systemd user unit's name (`runtimed install` writes it; clients start it).
SERVICE_NAME = "runtimed.service"


def _config_home() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    # The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    return Path.home() / ".config"


def systemd_unit_path() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user/runtimed.service`` (``~/.config/...`` by default)."""
    return _config_home() / "systemd" / "user" / SERVICE_NAME
