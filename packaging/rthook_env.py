"""PyInstaller runtime hook: the MCP servers km starts get the environment the user gave km.

The bootloader may point LD_LIBRARY_PATH (LIBPATH on AIX, DYLD_LIBRARY_PATH) at the bundle,
keeping the user's value in *_ORIG, and it sets `_PYI_*` variables for itself. A server exec'd
with them could load km's libssl instead of its own, or, if it is a PyInstaller program too,
take km's bundle for its own. km's own libraries are already loaded or found by path, so this
changes nothing for km itself (the dynamic loader read its variables when the process started),
and km never re-executes itself (the capture process is a fork).
"""

import os
import sys

_bundle = getattr(sys, "_MEIPASS", None)
for _name in ("LD_LIBRARY_PATH", "LIBPATH", "DYLD_LIBRARY_PATH"):
    _orig = os.environ.pop(_name + "_ORIG", None)
    if _orig is not None:
        os.environ[_name] = _orig
    elif _bundle and _name in os.environ:
        _kept = [p for p in os.environ[_name].split(os.pathsep) if p and p != _bundle]
        if _kept:
            os.environ[_name] = os.pathsep.join(_kept)
        else:
            del os.environ[_name]
for _name in [n for n in os.environ if n.startswith("_PYI_") or n == "_MEIPASS2"]:
    del os.environ[_name]
