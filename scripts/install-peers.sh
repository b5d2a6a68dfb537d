#!/usr/bin/env bash
# Installs the independent peers used by Switchboard's interop tests:
#
#   node:   `npm ci` in tests/interop (ws, engine.io, socket.io, their clients,
#           playwright-core) -> tests/interop/node_modules
#   python: a venv at .cache/venv with tests/interop/requirements.txt
#           (websockets, python-socketio, python-engineio, aiohttp, ...)
#   chromium: Debian's `chromium` at /usr/bin/chromium, for the browser tests
#           (tests/browser, driven by playwright-core), installed with apt-get
#           when missing (sudo when not root); without apt it is skipped with
#           a warning, except under CI=true where that is an error
#
# Idempotent and fast when nothing changed: each part keeps a stamp (a sha256 of
# its lock/requirement files, plus the interpreter version for python) and is
# skipped when the stamp matches.
#
# Usage: scripts/install-peers.sh [node] [python] [chromium]   (default: all)
#
# Environment:
#   PEERS_FORCE=1   reinstall even if the stamps are current
#   PYTHON3         interpreter used to create the venv (default: python3)
#   NPM             npm executable (default: npm)
#   CHROMIUM        the browser the tests drive (default: /usr/bin/chromium)
#
# Needs node >= 20 with npm, and python3 (3.11) with the venv module; on Debian,
# when python3-venv is missing and we run as root, it is installed with apt-get.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INTEROP=$ROOT/tests/interop
CACHE=$ROOT/.cache
VENV=$CACHE/venv
PYTHON3=${PYTHON3:-python3}
NPM=${NPM:-npm}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
FORCE=${PEERS_FORCE:-0}

log() { printf 'install-peers: %s\n' "$*"; }
die() {
  printf 'install-peers: error: %s\n' "$*" >&2
  exit 1
}
hash_files() { cat "$@" | sha256sum | cut -d' ' -f1; }

do_node=0
do_python=0
do_chromium=0
if [[ $# -eq 0 ]]; then
  do_node=1
  do_python=1
  do_chromium=1
fi
for arg in "$@"; do
  case $arg in
  node) do_node=1 ;;
  python) do_python=1 ;;
  chromium) do_chromium=1 ;;
  -h | --help)
    sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument '$arg' (expected: node, python, chromium)" ;;
  esac
done

mkdir -p "$CACHE"

# Serialise concurrent runs (e.g. several test binaries installing at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/install-peers.lock"
  flock 9
fi

# --- node ----------------------------------------------------------------------
install_node() {
  command -v node >/dev/null 2>&1 || die "'node' not found (need Node.js >= 20 with npm)"
  command -v "$NPM" >/dev/null 2>&1 || die "'$NPM' not found (need npm)"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if ((major < 20)); then
    log "warning: node $(node --version) is older than 20; playwright-core needs >= 20"
  fi

  local stamp=$INTEROP/node_modules/.install-peers.stamp
  local want
  want="$(hash_files "$INTEROP/package.json" "$INTEROP/package-lock.json") node-$major"
  if [[ $FORCE != 1 && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "node: tests/interop/node_modules is up to date (package-lock.json unchanged)"
    return
  fi

  log "node: npm ci in tests/interop (node $(node --version), npm $("$NPM" --version))"
  local start=$SECONDS
  # --ignore-scripts: none of the pinned packages needs an install script, and
  # nothing may download binaries (browsers, prebuilt addons) at install time.
  (cd "$INTEROP" && "$NPM" ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  # shellcheck disable=SC2016 # JavaScript, not shell
  (cd "$INTEROP" && node -e '
    const pins = require("./package.json").dependencies;
    for (const [name, spec] of Object.entries(pins)) {
      const want = spec.replace(/^npm:.*@/, "");
      const got = require(`./node_modules/${name}/package.json`).version;
      if (got !== want) { console.error(`${name}: want ${want}, got ${got}`); process.exit(1); }
    }') || die "node_modules does not match package.json after npm ci"
  printf '%s\n' "$want" >"$stamp"
  log "node: installed $(cd "$INTEROP" && node -p 'Object.entries(require("./package.json").dependencies).map(([n,v])=>n+"@"+v.replace(/^npm:/,"")).join(", ")') in $((SECONDS - start))s"
}

# --- python --------------------------------------------------------------------
ensure_venv_module() {
  # Debian splits ensurepip (needed by `python3 -m venv`) into python3-venv /
  # python3.X-venv.
  if "$PYTHON3" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    return
  fi
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    local pkg
    pkg="python$("$PYTHON3" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    log "python: $PYTHON3 has no venv/ensurepip; apt-get install $pkg"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$pkg" ||
      { apt-get update -q && apt-get install -y -q "$pkg"; } ||
      die "could not apt-get install $pkg"
    "$PYTHON3" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
      die "$PYTHON3 still cannot create venvs after installing $pkg"
  else
    die "$PYTHON3 cannot create venvs (on Debian: apt-get install python3-venv)"
  fi
}

install_python() {
  command -v "$PYTHON3" >/dev/null 2>&1 || die "'$PYTHON3' not found (need python3 3.11)"
  local req=$INTEROP/requirements.txt
  local py=$VENV/bin/python
  local stamp=$VENV/.install-peers.stamp

  # A venv whose base interpreter vanished or changed is rebuilt.
  local pyver=""
  if [[ -x $py ]]; then
    pyver=$("$py" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || true)
  fi
  local want
  want="$(hash_files "$req") python-$pyver"
  if [[ $FORCE != 1 && -n $pyver && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "python: .cache/venv is up to date (requirements.txt unchanged, python $pyver)"
    return
  fi

  local start=$SECONDS
  if [[ -z $pyver || $FORCE == 1 ]]; then
    ensure_venv_module
    log "python: creating venv .cache/venv with $PYTHON3 ($("$PYTHON3" --version 2>&1))"
    rm -rf "$VENV"
    "$PYTHON3" -m venv "$VENV"
    pyver=$("$py" -c 'import sys; print(sys.version.split()[0])')
  fi
  rm -f "$stamp"
  log "python: pip install -r tests/interop/requirements.txt into .cache/venv (python $pyver)"
  PIP_NO_PYTHON_VERSION_WARNING=1 "$py" -m pip install --disable-pip-version-check \
    --no-input -q -r "$req"
  "$py" -m pip check --disable-pip-version-check >/dev/null ||
    die "pip check failed in .cache/venv"
  "$py" -c 'import websockets, socketio, engineio, requests, websocket, aiohttp' ||
    die "the venv cannot import the peers"
  printf '%s\n' "$(hash_files "$req") python-$pyver" >"$stamp"
  log "python: installed $("$py" -c 'import websockets, socketio, engineio, aiohttp
from importlib.metadata import version as v
print(", ".join(f"{n}=={v(n)}" for n in ("websockets", "python-socketio", "python-engineio", "aiohttp", "requests", "websocket-client")))') in $((SECONDS - start))s"
}

# --- chromium ------------------------------------------------------------------
in_ci() { [[ ${CI:-} == true || ${CI:-} == 1 ]]; }

chromium_version() { "$CHROMIUM" --version 2>/dev/null | head -n1; }

install_chromium() {
  if [[ -x $CHROMIUM ]]; then
    log "chromium: $(chromium_version || echo "$CHROMIUM") is installed"
    return
  fi
  if [[ $CHROMIUM != /usr/bin/chromium ]]; then
    die "CHROMIUM=$CHROMIUM does not exist"
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    if in_ci; then
      die "chromium: /usr/bin/chromium is missing and apt-get is unavailable (CI needs Debian's chromium for the browser tests)"
    fi
    log "warning: chromium: /usr/bin/chromium is missing and apt-get is unavailable; the browser tests will be skipped"
    return
  fi
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    elif in_ci; then
      die "chromium: not root and no sudo to apt-get install chromium"
    else
      log "warning: chromium: not root and no sudo; the browser tests will be skipped (apt-get install chromium)"
      return
    fi
  fi
  local start=$SECONDS
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  log "chromium: apt-get install chromium"
  # The package lists of a fresh machine may be stale or missing: update and
  # retry once when the first attempt fails.
  "${apt[@]}" install -y -q --no-install-recommends chromium ||
    { "${apt[@]}" update -q && "${apt[@]}" install -y -q --no-install-recommends chromium; } ||
    die "could not apt-get install chromium"
  [[ -x $CHROMIUM ]] || die "chromium: installed, but $CHROMIUM does not exist"
  log "chromium: installed $(chromium_version || echo chromium) in $((SECONDS - start))s"
}

((do_node)) && install_node
((do_python)) && install_python
((do_chromium)) && install_chromium
log "ready: node_modules=tests/interop/node_modules python=.cache/venv/bin/python chromium=$CHROMIUM"
