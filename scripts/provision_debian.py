#!/usr/bin/env python3
"""Provision CPython interpreters from Debian unstable (sid) binary packages.

Called by scripts/pythons.sh; stdlib only, runs on any python3 >= 3.8.

    provision_debian.py --cache DIR [--suite sid] 3.14 3.15

For each version it prints "VERSION /abs/path/to/python3.X" on stdout once the
interpreter is unpacked, patched and verified; progress and errors go to
stderr. A version that cannot be provisioned is reported on stderr and left
out of stdout; the exit status is 1 then, so the caller decides whether that
is fatal (it is under CI=true).

Why the patching: sid's glibc is newer than the host's, and Debian's python
is built for prefix /usr. The unpacked python binary gets PT_INTERP pointing
at the unpacked ld-linux, and every non-glibc ELF object gets a DT_RPATH
(not DT_RUNPATH: RUNPATH only applies to an object's own direct
dependencies, RPATH also covers what they pull in) pointing at the unpacked
lib dirs, so nothing ever resolves to the host's libc or libssl. Python finds
its prefix from the executable location (landmark usr/lib/python3.X/os.py),
so no wrapper or environment variable is needed and sys.executable works in
subprocesses and virtualenvs.
"""

import argparse
import concurrent.futures
import glob
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

INDEX_MAX_AGE = 24 * 3600
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Packages whose files only matter to dpkg maintainer scripts.
SKIP = {"debconf", "debconf-2.0"}
# glibc: its objects must keep their own dynamic sections untouched.
GLIBC = {"libc6", "libc-gconv-modules-extra"}
# What "the interpreter works" means; run after every build and on every warm run.
CHECK = ("import ssl, sqlite3, ctypes, _decimal, zlib, lzma, bz2, readline, uuid, hashlib, "
         "subprocess, sys; "
         "subprocess.run([sys.executable, '-c', 'import ssl'], check=True); "
         "ctypes.CDLL(None); "
         "assert sys.prefix.startswith(%r), sys.prefix; "
         "bad = [p for p in sys.path if p and not p.startswith(%r)]; "
         "assert not bad, 'host paths on sys.path: %%s' %% bad")

SELF_HASH = hashlib.sha256(open(__file__, "rb").read()).hexdigest()[:16]


class Error(Exception):
    pass


QUIET = False


def log(msg):
    if not QUIET:
        print("pythons: " + msg, file=sys.stderr, flush=True)


def warn(msg):
    print("pythons: warning: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- apt config

def apt_sources_files():
    files = []
    for pattern in ("/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list",
                    "/etc/apt/sources.list.d/*.list"):
        files.extend(sorted(glob.glob(pattern)))
    return files


def uris_from_file(path):
    """Yield the URIs of enabled 'deb' entries, in file order."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return
    if path.endswith(".sources"):
        for para in re.split(r"\n\s*\n", text):
            fields = {}
            key = None
            for line in para.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                    continue
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in fields.get("types", "").split():
                continue
            yield from fields.get("uris", "").split()
    else:
        for line in text.splitlines():
            line = line.split("#", 1)[0].split()
            if not line or line[0] != "deb":
                continue
            rest = line[1:]
            if rest and rest[0].startswith("["):  # [arch=amd64 signed-by=...]
                while rest and not rest[0].endswith("]"):
                    rest = rest[1:]
                rest = rest[1:]
            if rest:
                yield rest[0]


def find_mirror():
    env = os.environ.get("FRONTRUN_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    files = apt_sources_files()
    for path in files:
        for uri in uris_from_file(path):
            parsed = urllib.parse.urlparse(uri)
            # The main archive, not debian-security / debian-ports.
            if parsed.scheme in ("http", "https", "file") and "debian" in parsed.path.split("/"):
                return uri.rstrip("/")
    raise Error("cannot read the Debian mirror from apt configuration: looked for a 'deb' "
                "entry whose URI path has a 'debian' component in %s (set FRONTRUN_DEBIAN_MIRROR "
                "to override)" % (", ".join(files) or "/etc/apt/sources.list{,.d/*.sources,.d/*.list}"))


# ---------------------------------------------------------------- downloads

def fetch(url, dest, sha256=None, size=None):
    """Download url to dest via a temp file + rename, verifying sha256 if given."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    last = None
    for attempt in range(3):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".part-")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
            if sha256 and h.hexdigest() != sha256:
                raise Error("checksum mismatch for %s: got %s, index says %s" % (url, h.hexdigest(), sha256))
            if size is not None and os.path.getsize(tmp) != size:
                raise Error("size mismatch for %s" % url)
            os.replace(tmp, dest)
            return
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise NotOnMirror("not on the mirror (HTTP 404): %s" % url)
            last = e
        except (OSError, Error) as e:
            last = e
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        time.sleep(1 + attempt)
    raise Error("download failed: %s: %s" % (url, last))


class NotOnMirror(Error):
    pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- the index

class Index:
    def __init__(self, mirror, suite, arch, cache):
        self.mirror, self.suite, self.arch = mirror, suite, arch
        self.dir = os.path.join(cache, "debian", "%s-%s" % (suite, arch))
        self.inrelease = os.path.join(self.dir, "InRelease")
        self.packages_xz = os.path.join(self.dir, "Packages.xz")
        self.packages = None

    def age(self):
        try:
            return time.time() - os.path.getmtime(self.packages_xz)
        except OSError:
            return float("inf")

    def fresh(self):
        return self.age() < INDEX_MAX_AGE

    def refresh(self):
        """Fetch InRelease (signature-checked) and the Packages.xz it lists."""
        base = "%s/dists/%s" % (self.mirror, self.suite)
        log("fetching %s index from %s" % (self.suite, self.mirror))
        fetch(base + "/InRelease", self.inrelease + ".new")
        text = open(self.inrelease + ".new", encoding="utf-8", errors="replace").read()
        if shutil.which("gpgv") and os.path.exists(KEYRING):
            r = subprocess.run(["gpgv", "--keyring", KEYRING, self.inrelease + ".new"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            if r.returncode != 0:
                raise Error("InRelease signature check failed (%s):\n%s" % (KEYRING, r.stdout))
        else:
            warn("gpgv or %s missing: InRelease signature not checked" % KEYRING)
        want = "main/binary-%s/Packages.xz" % self.arch
        section = text.split("\nSHA256:", 1)[-1]
        m = re.search(r"^ ([0-9a-f]{64})\s+(\d+)\s+%s$" % re.escape(want), section, re.M)
        if not m:
            raise Error("%s/InRelease lists no %s" % (base, want))
        fetch("%s/%s" % (base, want), self.packages_xz, sha256=m.group(1), size=int(m.group(2)))
        os.replace(self.inrelease + ".new", self.inrelease)
        self.packages = None

    def load(self):
        if self.packages is not None:
            return self.packages
        pkgs, provides = {}, {}
        with lzma.open(self.packages_xz, "rt", encoding="utf-8", errors="replace") as f:
            data = f.read()
        for block in data.split("\n\n"):
            fields = {}
            for line in block.split("\n"):
                if not line or line[0] in " \t":
                    continue  # continuation lines (Description) are not needed
                k, _, v = line.partition(": ")
                if k in ("Package", "Version", "Depends", "Pre-Depends", "Provides",
                         "Filename", "SHA256", "Size"):
                    fields[k] = v.strip()
            name = fields.get("Package")
            if not name:
                continue
            old = pkgs.get(name)
            if old is None or vercmp(fields["Version"], old["Version"]) > 0:
                pkgs[name] = fields
            for p in parse_rel(fields.get("Provides", "")):
                provides.setdefault(p[0][0], []).append(name)
        self.packages = (pkgs, provides)
        return self.packages


def parse_rel(text):
    """'a (>= 1) | b, c' -> [[('a', '>=', '1'), ('b', None, None)], [('c', None, None)]]"""
    out = []
    for group in text.split(","):
        alts = []
        for alt in group.split("|"):
            m = re.match(r"\s*([^\s(:\[]+)(?::\S+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?", alt)
            if m and m.group(1):
                alts.append((m.group(1), m.group(2), m.group(3)))
        if alts:
            out.append(alts)
    return out


# Debian version comparison (deb-version(7)).
def _order(c):
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _cmp_part(a, b):
    i = j = 0
    while i < len(a) or j < len(b):
        diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not diff:
                diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if diff:
            return diff
    return 0


def vercmp(a, b):
    def split(v):
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), up, rev
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return ea - eb
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


def satisfies(version, op, want):
    if not op:
        return True
    c = vercmp(version, want)
    return {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0,
            "<": c <= 0, ">": c >= 0}[op]


def resolve(index, roots):
    """Transitive Depends/Pre-Depends closure of roots; first usable alternative wins."""
    pkgs, provides = index.load()
    chosen, stack = {}, [(r, None) for r in roots]
    while stack:
        name, parent = stack.pop()
        if name in chosen or name in SKIP:
            continue
        if name not in pkgs:
            raise Error("package %s (needed by %s) is not in the %s index" % (name, parent or "matrix", index.suite))
        fields = pkgs[name]
        chosen[name] = fields
        for field in ("Pre-Depends", "Depends"):
            for alts in parse_rel(fields.get(field, "")):
                pick = None
                for dep, op, ver in alts:
                    if dep in SKIP:
                        pick = dep
                        break
                    if dep in pkgs:
                        if not satisfies(pkgs[dep]["Version"], op, ver):
                            raise Error("%s needs %s (%s %s) but the index has %s: mirror mid-sync?"
                                        % (name, dep, op, ver, pkgs[dep]["Version"]))
                        pick = dep
                        break
                    if dep in provides and not op:
                        pick = sorted(provides[dep])[0]
                        break
                if pick is None:
                    raise Error("%s: cannot satisfy %s" % (name, fields.get(field)))
                stack.append((pick, name))
    return chosen


# ---------------------------------------------------------------- building

def elf_files(root, skip):
    for dirpath, _, files in os.walk(root):
        for fn in files:
            path = os.path.join(dirpath, fn)
            if path in skip or os.path.islink(path):
                continue
            try:
                with open(path, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        yield path
            except OSError:
                pass


def walk_files(root):
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


def relink_absolute_symlinks(root):
    """Absolute links (e.g. sitecustomize.py -> /etc/...) would reach into the host."""
    for dirpath, dirs, files in os.walk(root):
        for fn in dirs + files:
            path = os.path.join(dirpath, fn)
            if os.path.islink(path):
                target = os.readlink(path)
                if target.startswith("/"):
                    os.unlink(path)
                    os.symlink(os.path.relpath(root + target, dirpath), path)


def patchelf(*args):
    r = subprocess.run(["patchelf"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def build(version, root, debs, order):
    """Unpack debs (name -> path) into a fresh root and make it self-contained."""
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    glibc = [n for n in order if n in GLIBC]
    if "libc6" not in glibc:
        raise Error("libc6 is not among the resolved packages: cannot relocate without its ld.so")
    for name in glibc + [n for n in order if n not in GLIBC]:
        subprocess.run(["dpkg-deb", "-x", debs[name], root], check=True)
        if name == glibc[-1]:
            glibc_files = walk_files(root)
    relink_absolute_symlinks(root)

    ldso = sorted(glob.glob(os.path.join(root, "usr/lib/*-linux-gnu*/ld-linux*.so.*"))
                  + glob.glob(os.path.join(root, "lib/*-linux-gnu*/ld-linux*.so.*")))
    if not ldso:
        raise Error("no ld-linux*.so in the unpacked libc6")
    ldso = os.path.realpath(ldso[0])
    triplet = os.path.basename(os.path.dirname(ldso))
    libdirs = [d for d in (os.path.join(root, "usr/lib", triplet), os.path.join(root, "lib", triplet))
               if os.path.isdir(d) and not os.path.islink(d)]
    rpath = ":".join(libdirs)

    patched = 0
    for path in elf_files(root, glibc_files):
        rc, interp, _ = patchelf("--print-interpreter", path)
        if rc == 0 and interp:
            rc, _, err = patchelf("--set-interpreter", ldso, path)
            if rc:
                raise Error("patchelf --set-interpreter %s: %s" % (path, err))
        rc, _, err = patchelf("--force-rpath", "--set-rpath", rpath, path)
        if rc:
            raise Error("patchelf --set-rpath %s: %s" % (path, err))
        patched += 1
    log("%s: patched %d ELF objects (interp %s)" % (version, patched, os.path.relpath(ldso, root)))
    python = os.path.join(root, "usr/bin/python" + version)
    # Debian byte-compiles in postinst, which dpkg-deb -x skips; without .pyc every
    # process recompiles the stdlib (PYTHONDONTWRITEBYTECODE is common in CI).
    # The testsuite is left out: it doubles the time and only -m test needs it.
    r = subprocess.run([python, "-m", "compileall", "-q", "-j0", "-x", "/test/",
                        os.path.join(root, "usr/lib/python" + version)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_env())
    if r.returncode:
        # Only costs speed; the import check below decides whether the tree works.
        warn("%s: compileall reported errors (ignored):\n%s" % (version, r.stdout.decode(errors="replace")[-2000:]))
    return python


def check(python, root):
    code = CHECK % (root, root)
    r = subprocess.run([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, env=clean_env())
    return r.returncode == 0, r.stdout.strip()


def clean_env():
    env = dict(os.environ)
    for var in ("PYTHONHOME", "PYTHONPATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "VIRTUAL_ENV"):
        env.pop(var, None)
    return env


# ---------------------------------------------------------------- driver

def roots_for(version):
    return ["python%s" % version, "python%s-minimal" % version, "libpython%s-minimal" % version,
            "libpython%s-stdlib" % version, "libpython%s-testsuite" % version]


def read_stamp(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def provision(version, index, cache, debdir):
    vdir = os.path.join(cache, "pythons", version)
    root = os.path.join(vdir, "root")
    stamp_path = os.path.join(vdir, "stamp.json")
    python = os.path.join(root, "usr/bin/python" + version)
    stamp = read_stamp(stamp_path)
    stamp_ok = bool(stamp and stamp.get("helper") == SELF_HASH and stamp.get("root") == root
                    and os.path.exists(python))

    # Warm path: built by this helper, index younger than a day, still runs.
    if stamp_ok and index.fresh():
        ok, out = check(python, root)
        if ok:
            return python, stamp
        warn("%s: cached interpreter fails its check, rebuilding:\n%s" % (version, out))
        stamp_ok = False

    for attempt in (1, 2):
        if not index.fresh() or attempt == 2:
            try:
                index.refresh()
            except Error as e:
                if stamp_ok and check(python, root)[0]:
                    warn("%s; keeping the cached %s" % (e, version))
                    return python, stamp
                raise
        chosen = resolve(index, roots_for(version))
        versions = {n: f["Version"] for n, f in sorted(chosen.items())}
        if stamp_ok and stamp.get("packages") == versions and check(python, root)[0]:
            os.utime(stamp_path)
            return python, stamp
        log("%s: %s %s, %d packages" % (version, "python" + version, versions["python" + version], len(versions)))
        try:
            debs = download(chosen, index, debdir)
            break
        except NotOnMirror as e:
            if attempt == 2:
                raise
            warn("%s; refetching the index" % e)

    if os.path.exists(stamp_path):
        os.unlink(stamp_path)
    t = time.time()
    python = build(version, root, debs, sorted(chosen))
    ok, out = check(python, root)
    if not ok:
        raise Error("%s: the unpacked interpreter fails its check:\n%s" % (version, out))
    stamp = {"helper": SELF_HASH, "root": root, "packages": versions,
             "debs": sorted(os.path.basename(p) for p in debs.values())}
    with open(stamp_path + ".tmp", "w") as f:
        json.dump(stamp, f, indent=1, sort_keys=True)
    os.replace(stamp_path + ".tmp", stamp_path)
    log("%s: built and verified in %.1fs" % (version, time.time() - t))
    return python, stamp


def download(chosen, index, debdir):
    jobs, debs = [], {}
    for name, f in chosen.items():
        dest = os.path.join(debdir, os.path.basename(f["Filename"]))
        debs[name] = dest
        # A cached .deb is trusted only if it still matches the index.
        if os.path.exists(dest) and os.path.getsize(dest) == int(f["Size"]) and sha256_file(dest) == f["SHA256"]:
            continue
        jobs.append((index.mirror + "/" + f["Filename"], dest, f["SHA256"], int(f["Size"])))
    if jobs:
        total = sum(j[3] for j in jobs)
        log("downloading %d .debs (%.1f MB)" % (len(jobs), total / 1e6))
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for fut in [pool.submit(fetch, *j) for j in jobs]:
                fut.result()
    return debs


def prune(debdir, keep):
    for path in glob.glob(os.path.join(debdir, "*.deb")):
        if os.path.basename(path) not in keep:
            os.unlink(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--suite", default="sid")
    ap.add_argument("--quiet", action="store_true", help="only errors and warnings on stderr")
    ap.add_argument("versions", nargs="+")
    args = ap.parse_args()
    global QUIET
    QUIET = args.quiet
    cache = os.path.abspath(args.cache)

    try:
        for tool in ("dpkg", "dpkg-deb", "patchelf"):
            if not shutil.which(tool):
                raise Error("%s not found on PATH" % tool)
        arch = subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
                              universal_newlines=True, check=True).stdout.strip()
        index = Index(find_mirror(), args.suite, arch, cache)
    except Error as e:
        print("pythons: error: %s" % e, file=sys.stderr)
        return 1

    debdir = os.path.join(index.dir, "debs")
    failed, keep = [], set()
    for version in args.versions:
        try:
            python, stamp = provision(version, index, cache, debdir)
            print("%s %s" % (version, python), flush=True)
            keep.update(stamp.get("debs", []))
        except Error as e:
            print("pythons: error: python%s: %s" % (version, e), file=sys.stderr)
            failed.append(version)
    # Drop .debs that no current build uses, once we know the full set.
    if not failed:
        prune(debdir, keep)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
