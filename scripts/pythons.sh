#!/usr/bin/env bash
# Find or provision every interpreter of the test matrix, plus one virtualenv
# per version with pytest and coverage, and the build tools (uv, maturin).
#
# Usage:
#   scripts/pythons.sh            provision what is missing, print the table
#   scripts/pythons.sh --list     same, but only the table on stdout (for make)
#   scripts/pythons.sh --tools    provision, then print "uv PATH" / "maturin PATH"
#   scripts/pythons.sh --strict   a missing version is an error (default when CI=true)
#
# Table (stdout and $CACHE/pythons.txt), one line per version found:
#   3.14 /abs/interpreter /abs/venv
#
# Where the interpreters come from:
#   3.10 .. 3.13  pyenv: $(pyenv root)/versions/3.1X.N/bin/python3.1X, highest N
#   3.14, 3.15    Debian unstable .debs, via scripts/provision_debian.py; the
#                 mirror is the first 'debian' archive URI of the machine's apt
#                 configuration (FRONTRUN_DEBIAN_MIRROR overrides it)
#
# Cache layout ($CACHE = ${FRONTRUN_CACHE:-$HOME/.cache/frontrun}):
#   pythons.txt                     the table above
#   .lock                           flock: one provisioning run at a time
#   debian/sid-amd64/InRelease      signed index, checked with gpgv
#   debian/sid-amd64/Packages.xz    refetched when older than a day, or when a
#                                   .deb it names is gone from the mirror
#   debian/sid-amd64/debs/*.deb     downloads (sha256 from the index), pruned
#                                   to what the current builds use
#   pythons/3.X/root/               dpkg-deb -x of python3.X + runtime deps,
#                                   patched with patchelf; the interpreter is
#                                   root/usr/bin/python3.X
#   pythons/3.X/stamp.json          package versions + helper hash; written
#                                   last, so no stamp = incomplete tree
#   tools/                          venv (pyenv 3.11) with uv and maturin
#   venvs/3.X/                      uv venv per version with pytest, coverage
#   venvs/3.X/.frontrun-stamp       interpreter identity + pins it was made from
#   uv/                             uv's download cache (unless UV_CACHE_DIR is set)
#
# A warm run only checks stamps and runs each Debian interpreter once.
set -euo pipefail

PYENV_VERSIONS=(3.10 3.11 3.12 3.13)
DEBIAN_VERSIONS=(3.14 3.15)
TOOLS_PINS=(uv==0.13.8 maturin==1.16.0)
# The newest releases that still support 3.10 (coverage 7.17 needs 3.11).
VENV_PINS=(pytest==9.2.0 coverage==7.16.2)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
mode=table
strict=false
[[ ${CI:-} == true ]] && strict=true
for arg in "$@"; do
    case $arg in
        --list) mode=list ;;
        --tools) mode=tools ;;
        --strict) strict=true ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "pythons.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { [[ $mode == table ]] && echo "pythons: $*" >&2 || true; }
warn() { echo "pythons: warning: $*" >&2; }
die() { echo "pythons: error: $*" >&2; exit 1; }

CACHE=${FRONTRUN_CACHE:-${HOME:?HOME is not set}/.cache/frontrun}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
export UV_CACHE_DIR=${UV_CACHE_DIR:-$CACHE/uv}
# uv must use exactly the interpreters given, never fetch its own.
export UV_PYTHON_DOWNLOADS=never
unset VIRTUAL_ENV PYTHONHOME PYTHONPATH

exec 9>"$CACHE/.lock"
if ! flock -n 9; then
    say "waiting for another pythons.sh run on $CACHE"
    flock 9
fi

declare -A interp=() venv=() why=()

# ---- 3.10 .. 3.13 from pyenv
if command -v pyenv >/dev/null 2>&1; then
    pyenv_root=$(pyenv root)
else
    pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
fi
for v in "${PYENV_VERSIONS[@]}"; do
    best=
    # Only plain 3.X.N installs: not 3.13.0t (free-threaded) or 3.13-dev.
    while read -r dir; do
        [[ -x $dir/bin/python$v ]] && best=$dir/bin/python$v
    done < <(compgen -G "$pyenv_root/versions/$v.*" | grep -E "/$v\.[0-9]+$" | sort -V)
    if [[ -n $best ]]; then
        interp[$v]=$best
    else
        why[$v]="no $pyenv_root/versions/$v.N/bin/python$v"
    fi
done

# The helper and the tools venv run on pyenv's 3.11 when there is one.
host_python=${interp[3.11]:-}
if [[ -z $host_python ]]; then
    for v in "${PYENV_VERSIONS[@]}"; do host_python=${interp[$v]:-$host_python}; done
fi
if [[ -z $host_python ]]; then
    host_python=$(command -v python3 || true)
fi
[[ -n $host_python ]] || die "no python3 to run the provisioning helper (looked in $pyenv_root/versions and on PATH)"

# ---- 3.14, 3.15 from Debian unstable
ensure_patchelf() {
    command -v patchelf >/dev/null 2>&1 && return 0
    [[ $(id -u) == 0 ]] || die "patchelf is missing and we are not root: apt-get install patchelf"
    say "installing patchelf"
    local log=$CACHE/apt.log
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q patchelf >"$log" 2>&1; then
        # A fresh machine has empty apt lists.
        apt-get update -q >>"$log" 2>&1 && apt-get install -y -q patchelf >>"$log" 2>&1 \
            || { tail -20 "$log" >&2; die "apt-get install patchelf failed (log: $log)"; }
    fi
}
ensure_patchelf

helper_args=(--cache "$CACHE")
[[ $mode == table ]] || helper_args+=(--quiet)
set +e
debian_out=$("$host_python" "$here/provision_debian.py" "${helper_args[@]}" "${DEBIAN_VERSIONS[@]}")
set -e
while read -r v path; do
    [[ -n $v ]] && interp[$v]=$path
done <<<"$debian_out"
for v in "${DEBIAN_VERSIONS[@]}"; do
    [[ -n ${interp[$v]:-} ]] || why[$v]="Debian provisioning failed (see the errors above)"
done

# ---- tools venv: uv + maturin
tools=$CACHE/tools
tools_stamp="${TOOLS_PINS[*]} base=$host_python"
if [[ ! -x $tools/bin/uv || ! -x $tools/bin/maturin || $(cat "$tools/.frontrun-stamp" 2>/dev/null) != "$tools_stamp" ]]; then
    say "creating tools venv: ${TOOLS_PINS[*]}"
    rm -rf "$tools"
    "$host_python" -m venv "$tools"
    "$tools/bin/python" -m pip install -q --disable-pip-version-check "${TOOLS_PINS[@]}" \
        || die "pip install ${TOOLS_PINS[*]} into $tools failed"
    echo "$tools_stamp" >"$tools/.frontrun-stamp"
fi
uv=$tools/bin/uv

# ---- one venv per version
venv_check='import ssl, sqlite3, ctypes, _decimal, pytest, coverage, subprocess, sys
subprocess.run([sys.executable, "-c", "import ssl, pytest"], check=True)'
for v in "${PYENV_VERSIONS[@]}" "${DEBIAN_VERSIONS[@]}"; do
    py=${interp[$v]:-}
    [[ -n $py ]] || continue
    dir=$CACHE/venvs/$v
    # Identity of the interpreter: a rebuilt Debian tree gets a new mtime (patchelf).
    stamp="$py $(stat -L -c '%s %Y' "$py") ${VENV_PINS[*]} ${TOOLS_PINS[0]}"
    if [[ -x $dir/bin/python && $(cat "$dir/.frontrun-stamp" 2>/dev/null) == "$stamp" ]]; then
        venv[$v]=$dir
        continue
    fi
    say "creating venv $v: ${VENV_PINS[*]}"
    rm -rf "$dir"
    if "$uv" venv -q -p "$py" "$dir" \
        && "$uv" pip install -q --compile-bytecode --python "$dir/bin/python" "${VENV_PINS[@]}" \
        && "$dir/bin/python" -c "$venv_check"; then
        echo "$stamp" >"$dir/.frontrun-stamp"
        venv[$v]=$dir
    else
        why[$v]="venv creation failed for $py"
        unset "interp[$v]"
    fi
done

# ---- the table
table=
missing=()
for v in "${PYENV_VERSIONS[@]}" "${DEBIAN_VERSIONS[@]}"; do
    if [[ -n ${interp[$v]:-} && -n ${venv[$v]:-} ]]; then
        table+="$v ${interp[$v]} ${venv[$v]}"$'\n'
    else
        missing+=("$v")
    fi
done
printf '%s' "$table" >"$CACHE/pythons.txt.tmp"
mv "$CACHE/pythons.txt.tmp" "$CACHE/pythons.txt"

case $mode in
    table|list) printf '%s' "$table" ;;
    tools) printf 'uv %s\nmaturin %s\n' "$uv" "$tools/bin/maturin" ;;
esac
say "tools: $uv, $tools/bin/maturin; table in $CACHE/pythons.txt"

if ((${#missing[@]})); then
    for v in "${missing[@]}"; do
        echo "pythons: missing $v: ${why[$v]:-unknown}" >&2
    done
    if $strict; then
        die "missing interpreter(s): ${missing[*]} (strict: CI=true or --strict)"
    fi
    warn "continuing without ${missing[*]}"
fi
