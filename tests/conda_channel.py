"""A local conda channel for tests and benchmarks, built offline with py-rattler.

conda-forge is not reachable from here or CI, so this makes real ``.tar.bz2`` conda packages
and indexes them with ``rattler.index.index_fs``:

- ``python`` (for the current subdir): ``bin/python`` is a symlink to the interpreter that
  runs this code, plus a ``pyvenv.cfg`` at the prefix root, so the env's python treats the
  prefix as its own (``sys.prefix``, ``lib/pythonX.Y/site-packages`` with ``.pth`` files).
- ``ipykernel`` (noarch: python): a ``.pth`` file that exposes the host's site-packages, so
  the env can import the host ipykernel and run a real kernel.
- ``ipywidgets`` (noarch: python): a tiny module, depending on ipykernel.
- anything from ``extra``: more noarch python packages ``(name, version, depends)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import platform
import site
import sys
import sysconfig
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rattler import Subdir
from rattler.index import index_fs


@dataclass(frozen=True)
class _File:
    path: str
    data: bytes = b""
    symlink: str | None = None
    mode: int = 0o644


def host_python() -> str:
    """The real interpreter binary (not a venv's symlink to it)."""
    return str(Path(getattr(sys, "_base_executable", None) or sys.executable).resolve())


def host_site_packages() -> list[str]:
    """Where the host's packages (ipykernel and its deps) live."""
    paths = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    return list(dict.fromkeys(p for p in paths if Path(p).is_dir()))


def _package(
    out_dir: Path,
    name: str,
    version: str,
    subdir: str,
    files: Sequence[_File],
    depends: Sequence[str] = (),
    noarch: str | None = None,
) -> Path:
    build = "py_0" if noarch else "h0_0"
    index: dict[str, object] = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": list(depends),
        "license": "BSD-3-Clause",
        "subdir": subdir,
        "timestamp": int(time.time() * 1000),
    }
    if noarch:
        index["noarch"] = noarch
    else:
        index["arch"], index["platform"] = "x86_64", sys.platform
    paths = []
    for f in files:
        if f.symlink is not None:
            paths.append(
                {
                    "_path": f.path,
                    "path_type": "softlink",
                    "sha256": hashlib.sha256(f.symlink.encode()).hexdigest(),
                    "size_in_bytes": len(f.symlink),
                }
            )
        else:
            paths.append(
                {
                    "_path": f.path,
                    "path_type": "hardlink",
                    "sha256": hashlib.sha256(f.data).hexdigest(),
                    "size_in_bytes": len(f.data),
                }
            )
    info = [
        _File("info/index.json", json.dumps(index, indent=2).encode()),
        _File("info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode()),
        _File("info/files", "".join(f"{f.path}\n" for f in files).encode()),
        _File("info/about.json", json.dumps({"summary": f"test {name}"}).encode()),
    ]
    if noarch == "python":
        link = {"noarch": {"type": "python"}, "package_metadata_version": 1}
        info.append(_File("info/link.json", json.dumps(link).encode()))
    target = out_dir / subdir / f"{name}-{version}-{build}.tar.bz2"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:bz2") as tar:
        for f in [*info, *files]:
            member = tarfile.TarInfo(f.path)
            member.mtime = int(time.time())
            if f.symlink is not None:
                member.type, member.linkname = tarfile.SYMTYPE, f.symlink
                tar.addfile(member)
            else:
                member.size, member.mode = len(f.data), f.mode
                tar.addfile(member, io.BytesIO(f.data))
    return target


def build_channel(
    channel_dir: Path,
    extra: Iterable[tuple[str, str, Sequence[str]]] = (),
    python: str | None = None,
) -> str:
    """Write and index the channel under ``channel_dir``; return its ``file://`` URL."""
    python = python or host_python()
    subdir = str(Subdir.current())
    version = platform.python_version()
    major_minor = ".".join(version.split(".")[:2])
    (channel_dir / "noarch").mkdir(parents=True, exist_ok=True)
    pyvenv = f"home = {Path(python).parent}\ninclude-system-site-packages = false\n"
    pyvenv += f"version = {version}\n"
    _package(
        channel_dir,
        "python",
        version,
        subdir,
        [
            _File("bin/python", symlink=python),
            _File(f"bin/python{major_minor}", symlink="python"),
            _File("bin/python3", symlink="python"),
            _File("pyvenv.cfg", pyvenv.encode()),
            _File(f"lib/python{major_minor}/site-packages/README.txt", b"site-packages\n"),
        ],
    )
    pth = "".join(f"{p}\n" for p in host_site_packages()).encode()
    dep = f"python >={major_minor}"
    _package(
        channel_dir,
        "ipykernel",
        "6.29.0",
        "noarch",
        [
            _File("site-packages/runtimed_test_host.pth", pth),
            _File("site-packages/runtimed_test_ipykernel_shim.py", b"SHIM = 'ipykernel'\n"),
        ],
        depends=[dep],
        noarch="python",
    )
    _package(
        channel_dir,
        "ipywidgets",
        "8.1.0",
        "noarch",
        [
            _File("site-packages/ipywidgets/__init__.py", b"__version__ = '8.1.0'\n"),
        ],
        depends=[dep, "ipykernel"],
        noarch="python",
    )
    for name, ver, depends in extra:
        _package(
            channel_dir,
            name,
            ver,
            "noarch",
            [
                _File(f"site-packages/{name.replace('-', '_')}.py", b"OK = True\n"),
            ],
            depends=[dep, *depends],
            noarch="python",
        )
    asyncio.run(index_fs(channel_dir, write_zst=False, write_shards=False, force=True))
    return channel_dir.resolve().as_uri()


if __name__ == "__main__":
    print(build_channel(Path(sys.argv[1])))
