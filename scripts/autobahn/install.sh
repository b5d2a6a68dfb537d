#!/usr/bin/env bash
# Installs Autobahn|Testsuite (wstest, Python 2.7) into .cache/autobahn/ without
# touching the system:
#
#   1. `apt-get download` the python2.7 packages of Debian 11 (bullseye) with a
#      private apt state (own sources.list, lists, cache, keyring selection),
#   2. `dpkg -x` them into .cache/autobahn/py27root,
#   3. create a Python 2.7 virtualenv from that interpreter with virtualenv
#      20.21.1 (installed with the machine's python3 pip into a private folder),
#   4. `pip install` the fully pinned, hash-checked requirements.txt into it.
#
# Idempotent: a stamp (hash of this script and the requirement files) makes a
# second run return at once. Progress goes to stderr; the only line on stdout is
# the absolute path of wstest, so callers can do WSTEST=$(scripts/autobahn/install.sh).
#
# Environment:
#   AUTOBAHN_CACHE_DIR      where everything goes (default: <project>/.cache/autobahn)
#   AUTOBAHN_DEBIAN_MIRROR  bullseye mirror (default: http://deb.debian.org/debian)
#   PYTHON3                 python3 with pip for the bootstrap (default: python3)
#   AUTOBAHN_FORCE=1        rebuild even if the stamp is current
#
# Needs: apt-get, dpkg, gcc (wsaccel, zope.interface, autobahn, txaio are built
# from sdists), python3 with pip, debian-archive-keyring; flock is optional.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
CACHE_DIR=${AUTOBAHN_CACHE_DIR:-$PROJECT_DIR/.cache/autobahn}
MIRROR=${AUTOBAHN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bullseye
PYTHON3=${PYTHON3:-python3}

# Exact bullseye versions (bullseye main is frozen since its last point release).
DEBS=(
  python2.7=2.7.18-8+deb11u1
  python2.7-minimal=2.7.18-8+deb11u1
  libpython2.7-minimal=2.7.18-8+deb11u1
  libpython2.7-stdlib=2.7.18-8+deb11u1
  libpython2.7=2.7.18-8+deb11u1
  libpython2.7-dev=2.7.18-8+deb11u1
  libssl1.1=1.1.1w-0+deb11u1
  libffi7=3.3-6
)
# The remaining shared-library dependencies of libpython2.7-stdlib (libc6, zlib1g,
# libbz2-1.0, libexpat1, libdb5.3, libsqlite3-0, ncurses, readline, ...) keep their
# sonames in bookworm and are taken from the system; only libssl1.1 and libffi7 are
# gone there, so they come from bullseye too and are found via LD_LIBRARY_PATH.

PY27ROOT=$CACHE_DIR/py27root
PY27LIB=$PY27ROOT/usr/lib/x86_64-linux-gnu
PY27=$PY27ROOT/usr/bin/python2.7
VENV=$CACHE_DIR/venv
WSTEST=$VENV/bin/wstest
APT_DIR=$CACHE_DIR/apt
DEB_DIR=$CACHE_DIR/debs
BOOTSTRAP_DIR=$CACHE_DIR/bootstrap
STAMP=$CACHE_DIR/install.stamp

log() { printf 'autobahn-install: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$CACHE_DIR"

# Serialise concurrent installs (parallel CI steps sharing one checkout).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/install.lock"
  flock 9
fi

want_stamp=$(cat "$SCRIPT_DIR/install.sh" "$SCRIPT_DIR/requirements.txt" \
  "$SCRIPT_DIR/requirements-bootstrap.txt" | sha256sum | cut -d' ' -f1)

if [[ ${AUTOBAHN_FORCE:-0} != 1 && -f $STAMP && -x $WSTEST ]] &&
  [[ $(cat "$STAMP") == "$want_stamp" ]]; then
  printf '%s\n' "$WSTEST"
  exit 0
fi

start=$(date +%s)
log "installing Autobahn|Testsuite into $CACHE_DIR"

# --- prerequisites -----------------------------------------------------------
for tool in apt-get dpkg dpkg-deb gcc "$PYTHON3"; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done
arch=$(dpkg --print-architecture)
[[ $arch == amd64 ]] || die "only amd64 is supported (requirements.txt hashes are for x86_64 wheels), got $arch"
"$PYTHON3" -m pip --version >/dev/null 2>&1 || die "$PYTHON3 has no pip (python3 -m pip)"

rm -f "$STAMP"
rm -rf "$PY27ROOT" "$PY27ROOT.tmp" "$VENV" "$BOOTSTRAP_DIR" "$DEB_DIR"

# --- 1. private apt state for bullseye -----------------------------------------
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" \
  "$APT_DIR/etc/trusted.gpg.d" "$APT_DIR/etc/preferences.d" "$DEB_DIR"
: >"$APT_DIR/status"
rm -f "$APT_DIR/etc/trusted.gpg.d/"*
found_key=0
for key in /usr/share/keyrings/debian-archive-bullseye-stable.gpg \
  /usr/share/keyrings/debian-archive-bullseye-automatic.gpg \
  /usr/share/keyrings/debian-archive-bullseye-security-automatic.gpg; do
  if [[ -f $key ]]; then
    ln -s "$key" "$APT_DIR/etc/trusted.gpg.d/"
    found_key=1
  fi
done
if [[ $found_key == 0 ]]; then
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] ||
    die "no Debian archive keyring in /usr/share/keyrings (package debian-archive-keyring)"
  ln -s /usr/share/keyrings/debian-archive-keyring.gpg "$APT_DIR/etc/trusted.gpg.d/"
fi
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$APT_DIR/etc/sources.list"

# The system's apt.conf.d is still read (proxy settings keep working); everything
# that holds state or selects sources/keys/pins is private.
APT_OPTS=(
  -q
  -o "Dir::State=$APT_DIR"
  -o "Dir::State::Lists=$APT_DIR/lists"
  -o "Dir::State::status=$APT_DIR/status"
  -o "Dir::Cache=$APT_DIR/cache"
  -o "Dir::Etc::sourcelist=$APT_DIR/etc/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::Etc::trusted=$APT_DIR/etc/trusted.gpg"
  -o "Dir::Etc::trustedparts=$APT_DIR/etc/trusted.gpg.d"
  -o "Dir::Etc::preferences=$APT_DIR/etc/preferences"
  -o "Dir::Etc::preferencesparts=$APT_DIR/etc/preferences.d"
  -o "Debug::NoLocking=1"
  -o "APT::Architecture=amd64"
  -o "APT::Architectures::=amd64"
  -o "Acquire::Languages=none"
  -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"
)
if [[ $(id -u) == 0 ]]; then
  # the private folders are not readable by the _apt sandbox user
  APT_OPTS+=(-o "APT::Sandbox::User=root")
fi

log "apt-get update (private state, $SUITE from $MIRROR)"
apt-get "${APT_OPTS[@]}" update >&2
log "apt-get download ${DEBS[*]}"
(cd "$DEB_DIR" && apt-get "${APT_OPTS[@]}" download "${DEBS[@]}" >&2)

# --- 2. unpack ------------------------------------------------------------------
mkdir -p "$PY27ROOT.tmp"
for deb in "$DEB_DIR"/*.deb; do
  dpkg-deb -x "$deb" "$PY27ROOT.tmp"
done
mv "$PY27ROOT.tmp" "$PY27ROOT"
LD_LIBRARY_PATH="$PY27LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$PY27" -c \
  'import ssl, hashlib, ctypes, zlib, bz2, pyexpat, json, sqlite3' ||
  die "the unpacked python2.7 cannot import its standard modules"

# --- 3. virtualenv --------------------------------------------------------------
log "virtualenv (python3 bootstrap in $BOOTSTRAP_DIR)"
PIP_ROOT_USER_ACTION=ignore "$PYTHON3" -m pip install --disable-pip-version-check \
  --no-input -q --no-deps --require-hashes --target "$BOOTSTRAP_DIR" \
  -r "$SCRIPT_DIR/requirements-bootstrap.txt" >&2
LD_LIBRARY_PATH="$PY27LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONPATH="$BOOTSTRAP_DIR" \
  "$PYTHON3" -m virtualenv --no-periodic-update --no-download \
  --app-data "$CACHE_DIR/virtualenv-appdata" --python "$PY27" "$VENV" >&2

# The venv's interpreter is a copy of the bullseye binary; its _ssl, _hashlib and
# _ctypes need libssl1.1/libffi7 from py27root, so bin/python becomes a wrapper
# that sets LD_LIBRARY_PATH. `exec -a` keeps sys.executable at bin/python, so
# console scripts (wstest) get the wrapper in their shebang.
real=$VENV/bin/python2.7-bin
mv "$VENV/bin/python" "$real"
# shellcheck disable=SC2016 # the $-expressions are for the generated wrapper
{
  echo '#!/bin/bash'
  echo '# Generated by scripts/autobahn/install.sh: bullseye python2.7 + private libssl1.1/libffi7.'
  printf 'lib=%q\n' "$PY27LIB"
  echo 'case ":${LD_LIBRARY_PATH:-}:" in'
  echo '  *":$lib:"*) ;;'
  echo '  *) export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;'
  echo 'esac'
  printf 'exec -a "$0" %q "$@"\n' "$real"
} >"$VENV/bin/python"
chmod +x "$VENV/bin/python"
for alias in python2 python2.7; do
  rm -f "$VENV/bin/$alias"
  ln -s python "$VENV/bin/$alias"
done

# --- 4. autobahntestsuite -------------------------------------------------------
log "pip install -r requirements.txt (compiles wsaccel, zope.interface, ...)"
# Debian's distutils config points at /usr/include/python2.7; use ours instead.
CFLAGS="-I$PY27ROOT/usr/include/python2.7 -I$PY27ROOT/usr/include" \
  PIP_NO_PYTHON_VERSION_WARNING=1 PIP_CACHE_DIR="$CACHE_DIR/pip-cache" \
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
  --no-deps --no-build-isolation --require-hashes \
  -r "$SCRIPT_DIR/requirements.txt" >&2
PIP_NO_PYTHON_VERSION_WARNING=1 "$VENV/bin/python" -m pip check >&2

# --- smoke test -----------------------------------------------------------------
"$VENV/bin/python" -W ignore -c '
import ssl, hashlib, ctypes
import wsaccel.utf8validator, wsaccel.xormask, ujson
import zope.interface._zope_interface_coptimizations
import twisted, OpenSSL, autobahn, autobahntestsuite
assert autobahntestsuite.__version__ == "0.8.2", autobahntestsuite.__version__
assert autobahn.__version__ == "0.10.9", autobahn.__version__
' || die "smoke test of the venv failed"
PYTHONWARNINGS=ignore "$WSTEST" --help >/dev/null || die "wstest --help failed"

printf '%s\n' "$want_stamp" >"$STAMP"
log "done in $(($(date +%s) - start))s"
printf '%s\n' "$WSTEST"
