"""Name, pack and checksum km's self-contained builds; runs on every release platform.

    python packaging/archive.py name                  km-<version>-<os>-<arch> for this machine
    python packaging/archive.py pack BUILD_DIR OUT    BUILD_DIR (PyInstaller's onedir) as
                                                      OUT/km-<version>-<os>-<arch>.tar.gz (.zip
                                                      on Windows), one top directory inside
    python packaging/archive.py sums DIR              DIR/SHA256SUMS for every archive in DIR

The version is km/__init__.py's `__version__`, the one place it is written.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OS_NAMES = {"linux": "linux", "darwin": "darwin", "windows": "windows"}
ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
ARCHIVE_SUFFIXES = (".tar.gz", ".zip")


def version() -> str:
    with open(os.path.join(ROOT, "km", "__init__.py"), encoding="utf-8") as f:
        found = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
    if found is None:
        raise SystemExit("archive.py: no __version__ in km/__init__.py")
    return found.group(1)


def platform_name() -> str:
    system, machine = platform.system().lower(), platform.machine().lower()
    if system not in OS_NAMES or machine not in ARCH_NAMES:
        raise SystemExit(f"archive.py: no release name for {system}/{machine}")
    return f"{OS_NAMES[system]}-{ARCH_NAMES[machine]}"


def name() -> str:
    return f"km-{version()}-{platform_name()}"


def pack(build_dir: str, out_dir: str) -> str:
    top = name()
    os.makedirs(out_dir, exist_ok=True)
    if platform.system() == "Windows":
        path = os.path.join(out_dir, top + ".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for folder, dirs, files in os.walk(build_dir):
                dirs.sort()
                for file in sorted(files):
                    full = os.path.join(folder, file)
                    z.write(full, os.path.join(top, os.path.relpath(full, build_dir)))
    else:
        path = os.path.join(out_dir, top + ".tar.gz")
        with tarfile.open(path, "w:gz", compresslevel=6) as t:
            t.add(build_dir, arcname=top)  # keeps modes and symlinks (macOS frameworks)
    return path


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sums(directory: str) -> str:
    archives = sorted(
        f for f in os.listdir(directory) if f.startswith("km-") and f.endswith(ARCHIVE_SUFFIXES)
    )
    if not archives:
        raise SystemExit(f"archive.py: no km-*.tar.gz or km-*.zip in {directory}")
    path = os.path.join(directory, "SHA256SUMS")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for archive in archives:  # the format of `sha256sum` and `shasum -a 256`
            f.write(f"{sha256(os.path.join(directory, archive))}  {archive}\n")
    return path


def main(argv: list[str]) -> int:
    if argv[:1] == ["name"] and len(argv) == 1:
        print(name())
    elif argv[:1] == ["version"] and len(argv) == 1:
        print(version())
    elif argv[:1] == ["pack"] and len(argv) == 3:
        print(pack(argv[1], argv[2]))
    elif argv[:1] == ["sums"] and len(argv) == 2:
        print(sums(argv[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
