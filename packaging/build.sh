#!/usr/bin/env bash
# Build the self-contained km for this machine (PyInstaller, one directory), pack it as
# dist/km-<version>-<os>-<arch>.tar.gz (.zip on Windows), write dist/SHA256SUMS, smoke-test it.
#   packaging/build.sh [--out DIR] [--no-smoke]
#   PYTHON=/path/to/python   the Python with km's dependencies and PyInstaller (default .venv's;
#                            `pip install '.[build,postgres]'` or `./dev setup` provides them)
# The release workflow runs this same script on every platform.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=dist
SMOKE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --no-smoke) SMOKE=0; shift ;;
    *) echo "build.sh: unknown option $1 (see the top of packaging/build.sh)" >&2; exit 2 ;;
  esac
done
if [ -z "${PYTHON:-}" ]; then
  PYTHON=.venv/bin/python
  [ -x "$PYTHON" ] || PYTHON=.venv/Scripts/python.exe
fi
"$PYTHON" -c 'import PyInstaller' 2>/dev/null ||
  { echo "build.sh: PyInstaller is not installed for $PYTHON: run ./dev setup, or pip install '.[build]'" >&2; exit 1; }

NAME=$("$PYTHON" packaging/archive.py name)
WORK=build/pyinstaller            # kept between builds: PyInstaller reuses its analysis
STAGE=$WORK/dist
started=$(date +%s)
rm -rf "$STAGE"
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$STAGE" --workpath "$WORK/work" packaging/km.spec
mkdir -p "$OUT"
rm -rf "${OUT:?}/$NAME" "$OUT/$NAME.tar.gz" "$OUT/$NAME.zip"
ARCHIVE=$("$PYTHON" packaging/archive.py pack "$STAGE/km" "$OUT")
"$PYTHON" packaging/archive.py sums "$OUT" >/dev/null
mv "$STAGE/km" "$OUT/$NAME"          # the unpacked build too, to run and measure
echo "build.sh: $ARCHIVE ($(du -k "$ARCHIVE" | cut -f1) KiB) in $(( $(date +%s) - started )) s"
KM="$OUT/$NAME/km"
[ -x "$KM" ] || KM="$OUT/$NAME/km.exe"
if [ "$SMOKE" = 1 ]; then
  packaging/smoke.sh "$KM"
fi
