#!/bin/sh
# Install km, the MCP observability proxy, from its GitHub release: no Python needed, no root.
#
#   curl -fsSL https://raw.githubusercontent.com/kilometers-ai/km/main/install.sh | sh
#   sh install.sh [--version X.Y.Z] [--prefix DIR] [--uninstall] [--help]
#
# Installs DIR/lib/km/<version>/ (the self-contained build) and the link DIR/bin/km, DIR being
# ~/.local unless --prefix says otherwise. Running it again upgrades in place; --uninstall
# removes everything it installed (km's captured data and config are kept).
#
# Environment: KM_VERSION (as --version), KM_INSTALL_PREFIX (as --prefix), KM_INSTALL_BASE_URL
# (where the archives and SHA256SUMS are; default the GitHub release), NO_COLOR.
# Every failure prints one line starting with "km install: error:" and exits non-zero, leaving
# nothing half-installed. Platforms without a build fall back to pipx or uv.

set -u

REPO_URL=https://github.com/kilometers-ai/km
PACKAGE=kilometers

# ---- messages ---------------------------------------------------------------------------------
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != dumb ]; then
  C_OK=$(printf '\033[32m') C_WARN=$(printf '\033[33m') C_BOLD=$(printf '\033[1m') C_OFF=$(printf '\033[0m')
else
  C_OK='' C_WARN='' C_BOLD='' C_OFF=''
fi
if [ -t 2 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != dumb ]; then
  C_ERR=$(printf '\033[31m') C_EOFF=$(printf '\033[0m')
else
  C_ERR='' C_EOFF=''
fi
say() { printf '%s\n' "km install: $*"; }
ok() { printf '%s\n' "${C_OK}km install:${C_OFF} $*"; }
warn() { printf '%s\n' "${C_WARN}km install: warning:${C_OFF} $*"; }
die() { printf '%s\n' "${C_ERR}km install: error:${C_EOFF} $*" >&2; exit 1; }

usage() {
  sed -n '2,15p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//' ||
    echo "usage: install.sh [--version X.Y.Z] [--prefix DIR] [--uninstall]"
}

# ---- arguments --------------------------------------------------------------------------------
VERSION=${KM_VERSION:-}
PREFIX=${KM_INSTALL_PREFIX:-}
UNINSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] || die "--version needs a value, e.g. --version 0.1.0"; VERSION=$2; shift 2 ;;
    --version=*) VERSION=${1#*=}; shift ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see install.sh --help)" ;;
  esac
done
VERSION=${VERSION#v}
case "$VERSION" in
  '' | [0-9]*) ;;
  *) die "'$VERSION' is not a version (want e.g. 0.1.0)" ;;
esac
if [ -z "$PREFIX" ]; then
  [ -n "${HOME:-}" ] || die "HOME is not set: give --prefix DIR"
  PREFIX=$HOME/.local
fi
case "$PREFIX" in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac
BINDIR=$PREFIX/bin
LIBDIR=$PREFIX/lib/km
LINK=$BINDIR/km
CREATED=$LIBDIR/.created-by-installer   # directories the installer made, removed on uninstall

# Is $LINK the installer's link (a symlink into $LIBDIR)?
our_link() {
  [ -L "$LINK" ] || return 1
  case "$(readlink "$LINK")" in "$LIBDIR"/*) return 0 ;; *) return 1 ;; esac
}

# ---- uninstall --------------------------------------------------------------------------------
if [ "$UNINSTALL" = 1 ]; then
  if [ ! -d "$LIBDIR" ] && ! our_link; then
    say "km is not installed under $PREFIX: nothing to remove"
    exit 0
  fi
  created=''
  [ -f "$CREATED" ] && created=$(cat "$CREATED")
  if our_link; then rm -f "$LINK" || die "cannot remove $LINK"; fi
  rm -rf "$LIBDIR" || die "cannot remove $LIBDIR"
  # Directories the installer created, deepest first, only while empty.
  printf '%s\n' "$created" | awk 'NF { print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- |
    while IFS= read -r dir; do rmdir "$dir" 2>/dev/null || true; done
  ok "removed km from $PREFIX ($LINK and $LIBDIR)"
  say "km's captured events and config are kept; 'km status' and 'km config path' showed where"
  exit 0
fi

# ---- platform ---------------------------------------------------------------------------------
fallback() {  # no build for this platform: a Python package manager, or a clear message
  spec=$PACKAGE
  [ -n "$VERSION" ] && spec="$PACKAGE==$VERSION"
  if command -v pipx >/dev/null 2>&1; then
    warn "no prebuilt km for $1; installing the Python package with pipx instead"
    pipx install --force "$spec" || die "pipx install $spec failed"
    ok "installed km with pipx ('pipx uninstall $PACKAGE' removes it)"
    exit 0
  fi
  if command -v uv >/dev/null 2>&1; then
    warn "no prebuilt km for $1; installing the Python package with uv instead"
    uv tool install --force "$spec" || die "uv tool install $spec failed"
    ok "installed km with uv ('uv tool uninstall $PACKAGE' removes it)"
    exit 0
  fi
  die "no prebuilt km for $1: install Python 3.11+ and pipx, then run 'pipx install $PACKAGE'"
}

os=$(uname -s 2>/dev/null) || die "cannot run uname to tell the platform"
arch=$(uname -m 2>/dev/null) || die "cannot run uname to tell the platform"
case "$os" in
  Linux) OS=linux ;;
  Darwin) OS=darwin ;;
  MINGW* | MSYS* | CYGWIN* | Windows_NT)
    die "on Windows run install.ps1 in PowerShell: irm $REPO_URL/releases/latest/download/install.ps1 | iex" ;;
  *) OS='' ;;
esac
case "$arch" in
  x86_64 | amd64) ARCH=amd64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) ARCH='' ;;
esac
# macOS under Rosetta reports x86_64: prefer the native build.
if [ "$OS" = darwin ] && [ "$ARCH" = amd64 ] &&
   [ "$(sysctl -n sysctl.proc_translated 2>/dev/null)" = 1 ]; then
  ARCH=arm64
fi
# The Linux builds link against glibc: musl systems (Alpine) need the Python package.
if [ "$OS" = linux ] && { ls /lib/ld-musl-* >/dev/null 2>&1 || ldd --version 2>&1 | grep -qi musl; }; then
  OS=''
  os="$os (musl libc)"
fi
if [ -z "$OS" ] || [ -z "$ARCH" ]; then fallback "$os/$arch"; fi
PLATFORM=$OS-$ARCH

# Why the last download failed, in a few words.
fetch_error() { tail -n 1 "$TMP/fetch.err" 2>/dev/null | sed 's/^curl: ([0-9]*) //'; }

# ---- tools ------------------------------------------------------------------------------------
if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 2 --connect-timeout 20 -o "$2" "$1" 2>"$TMP/fetch.err"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -nv -T 20 -t 3 -O "$2" "$1" 2>"$TMP/fetch.err"; }
else
  die "neither curl nor wget found: install one of them"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
elif command -v openssl >/dev/null 2>&1; then
  sha256() { openssl dgst -sha256 "$1" | sed 's/.*= *//'; }
else
  die "no sha256sum, shasum or openssl to verify the download with"
fi
command -v tar >/dev/null 2>&1 || die "tar not found"

# ---- download and verify, in a temporary directory that is always removed ----------------------
TMP=$(mktemp -d 2>/dev/null || mktemp -d -t km-install) || die "cannot create a temporary directory"
STAGE=''
cleanup() {
  rm -rf "$TMP"
  [ -n "$STAGE" ] && rm -rf "$STAGE"
  [ -n "${NEWLINK:-}" ] && rm -f "$NEWLINK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

if [ -n "${KM_INSTALL_BASE_URL:-}" ]; then
  BASE=${KM_INSTALL_BASE_URL%/}
elif [ -n "$VERSION" ]; then
  BASE=$REPO_URL/releases/download/v$VERSION
else
  BASE=$REPO_URL/releases/latest/download
fi

say "downloading km ${VERSION:-(latest)} for $PLATFORM from $BASE"
fetch "$BASE/SHA256SUMS" "$TMP/SHA256SUMS" || die "cannot download $BASE/SHA256SUMS: $(fetch_error)"
# The archive for this platform, and so the version when none was asked for.
if [ -n "$VERSION" ]; then
  ARCHIVE=km-$VERSION-$PLATFORM.tar.gz
  line=$(awk -v f="$ARCHIVE" '$2 == f || $2 == "*" f' "$TMP/SHA256SUMS" | head -n 1)
else
  line=$(awk -v s="-$PLATFORM.tar.gz" '
    { n = $2; sub(/^\*/, "", n) }
    n ~ /^km-/ && substr(n, length(n) - length(s) + 1) == s { print $1 " " n; exit }' "$TMP/SHA256SUMS")
  ARCHIVE=$(printf '%s' "$line" | cut -d' ' -f2)
  VERSION=${ARCHIVE#km-}
  VERSION=${VERSION%-"$PLATFORM".tar.gz}
fi
[ -n "$line" ] || die "the release at $BASE has no km ${VERSION:+$VERSION }build for $PLATFORM"
WANT=$(printf '%s' "$line" | cut -d' ' -f1)

fetch "$BASE/$ARCHIVE" "$TMP/$ARCHIVE" || die "cannot download $BASE/$ARCHIVE: $(fetch_error)"
GOT=$(sha256 "$TMP/$ARCHIVE")
[ "$GOT" = "$WANT" ] ||
  die "checksum mismatch for $ARCHIVE (got $GOT, SHA256SUMS says $WANT): refusing to install"
say "checksum verified ($WANT)"

mkdir "$TMP/x" || die "cannot write to $TMP"
tar -xzf "$TMP/$ARCHIVE" -C "$TMP/x" || die "cannot unpack $ARCHIVE"
TOP=$TMP/x/km-$VERSION-$PLATFORM
[ -x "$TOP/km" ] || die "$ARCHIVE does not hold km-$VERSION-$PLATFORM/km"
got_version=$("$TOP/km" --version 2>/dev/null) ||
  die "the downloaded km does not run on this machine ($PLATFORM): try 'pipx install $PACKAGE'"
[ "$got_version" = "km $VERSION" ] || die "the downloaded km says '$got_version', expected 'km $VERSION'"

# ---- install: stage next to the target, then switch with renames -------------------------------
if [ -e "$LINK" ] || [ -L "$LINK" ]; then
  our_link || die "$LINK exists and was not installed by this script (pipx?): remove it, or use --prefix"
fi
made=''
for dir in "$PREFIX" "$PREFIX/lib" "$LIBDIR" "$BINDIR"; do
  if [ ! -d "$dir" ]; then
    mkdir "$dir" || die "cannot create $dir (use --prefix for another place)"
    made="$made$dir
"
  fi
done
STAGE=$LIBDIR/.new-$$
mv "$TOP" "$STAGE" || die "cannot write to $LIBDIR"
OLD=''
if [ -e "$LIBDIR/$VERSION" ]; then   # the same version again: put the fresh copy in its place
  OLD=$LIBDIR/.old-$$
  mv "$LIBDIR/$VERSION" "$OLD" || die "cannot replace $LIBDIR/$VERSION"
fi
if ! mv "$STAGE" "$LIBDIR/$VERSION"; then
  [ -n "$OLD" ] && mv "$OLD" "$LIBDIR/$VERSION"
  die "cannot move the new km into $LIBDIR/$VERSION"
fi
STAGE=$OLD
NEWLINK=$BINDIR/.km-new-$$
ln -s "$LIBDIR/$VERSION/km" "$NEWLINK" || die "cannot create a link in $BINDIR"
mv -f "$NEWLINK" "$LINK" || die "cannot link $LINK to $LIBDIR/$VERSION/km"
NEWLINK=''
{ [ -f "$CREATED" ] && cat "$CREATED"; printf '%s' "$made"; } | sort -u | grep . >"$TMP/created"
cp "$TMP/created" "$CREATED" 2>/dev/null || true
for other in "$LIBDIR"/*; do  # previous versions, now unused
  [ "$other" = "$LIBDIR/$VERSION" ] || rm -rf "$other"
done

ok "installed ${C_BOLD}km $VERSION${C_OFF} in $LIBDIR/$VERSION, linked from $LINK"
case ":${PATH:-}:" in
  *":$BINDIR:"*)
    found=$(command -v km 2>/dev/null || true)
    if [ -n "$found" ] && [ "$found" != "$LINK" ]; then
      warn "'km' on your PATH is $found, found before $LINK: remove it or put $BINDIR first"
    fi
    ;;
  *)
    case "${SHELL:-}" in
      */zsh) rc=$HOME/.zshrc ;;
      */bash) rc=$HOME/.bashrc ;;
      */fish) rc='' ;;
      *) rc=$HOME/.profile ;;
    esac
    warn "$BINDIR is not on your PATH. Add it:"
    if [ -n "$rc" ]; then
      printf '    %s\n' "echo 'export PATH=\"$BINDIR:\$PATH\"' >> $rc && . $rc"
    else
      printf '    %s\n' "fish_add_path $BINDIR"
    fi
    ;;
esac
say "next: 'km setup' puts km in front of your MCP clients' servers ('km setup --undo' takes it out),"
say "      'km doctor' checks it all, 'km update' fetches the next release"
