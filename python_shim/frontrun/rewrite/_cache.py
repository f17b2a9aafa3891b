"""Cache of rewritten module code.

Rules (the import hook relies on each of them):

* Where: beside CPython's own pyc, ``<dir>/__pycache__/<stem>.<cache_tag>-frontrun-<key>.pyc``
  (e.g. ``mod.cpython-313-frontrun-3f2a9c0d1e4b5a67.pyc``). CPython's names are
  ``<stem>.<cache_tag>[.opt-N].pyc`` and pytest's ``<stem>.<cache_tag>-pytest-<version>.pyc``, so
  the names never collide, and ``importlib.util.source_from_cache(module.__cached__)`` finds the
  source as it does for theirs (the optimisation level is in the key, not an ``.opt-N``). Under
  ``sys.pycache_prefix`` the file moves into the prefix tree exactly as CPython's pyc would; a
  configured ``cache_dir`` mirrors the absolute source directory under it instead. No
  ``cache_tag`` (``sys.implementation.cache_tag is None``): no cache.
* Key: 16 hex digits of a hash over (interpreter magic number, rewriter version, policy,
  resource methods, optimisation level). Whatever can change the rewritten code is in the key,
  so differently configured runs keep separate files instead of overwriting each other.
* Format: a PEP 552 *checked* hash-based pyc: magic (4 bytes) | flags ``0b11`` (hash-based,
  check source) | ``importlib.util.source_hash(source)`` (8 bytes) | ``marshal.dumps(code)`` |
  CRC-32 of the marshal data (4 bytes, little-endian; marshal reads one object and leaves it).
  A hash, not an mtime: a fresh checkout or a restored CI cache changes every mtime. The CRC:
  a damaged file unmarshals to a code object now and then (the wrong code, run), or fails
  inside CPython with a ``SystemError``.
* Reading: the source hash is checked on every load. A file that is missing, short, of another
  magic number or flag word, stale, damaged (its CRC), or does not unmarshal to a code object is ignored and
  rebuilt; nothing is reported. ``co_filename`` is corrected when the tree was moved. Reads
  happen even when writing is off (as CPython does with its pycs).
* Writing: to a temporary file in the target directory (``<name>.<pid>.<random>.tmp``, opened
  with ``O_EXCL``) then ``os.replace``: a reader sees the old file or the new one, never half a
  file. Concurrent writers (threads or processes) of one module produce the same bytes; the last
  rename wins. Nothing is written when ``sys.dont_write_bytecode`` is set. A directory that cannot
  be created or written (read-only tree, zip, permissions) is remembered for the process and not
  tried again. Code that does not marshal is simply not cached. Errors never escape: the cache
  is an optimisation only.
"""

from __future__ import annotations

import binascii
import errno
import importlib.util
import marshal
import os
import sys
import threading
import types

try:
    from _imp import _fix_co_filename
except ImportError:  # pragma: no cover - other implementations
    _fix_co_filename = None

MAGIC = importlib.util.MAGIC_NUMBER
# PEP 552 flags: bit 0 = hash-based, bit 1 = check_source.
CHECKED_HASH_FLAGS = (0b11).to_bytes(4, "little")
HEADER_SIZE = 16
CRC_SIZE = 4

# Counters for tests and diagnostics; increments are not atomic, treat them as approximate.
STATS = {"hits": 0, "misses": 0, "writes": 0, "write_failures": 0}

_unwritable_dirs: set[str] = set()
_lock = threading.Lock()


def cache_key(rewriter_version: str, policy: str, resource_methods: tuple[str, ...], optimize: int | None = None) -> str:
    if optimize is None:
        optimize = sys.flags.optimize
    material = repr((MAGIC, rewriter_version, policy, tuple(resource_methods), optimize)).encode()
    return importlib.util.source_hash(material).hex()


def cache_path(source_path: str, key: str, cache_dir: str | None = None) -> str | None:
    """Where the rewritten code of ``source_path`` is cached, or None when caching is impossible."""
    tag = sys.implementation.cache_tag
    if tag is None:
        return None
    if cache_dir is not None:
        head, tail = os.path.split(os.path.abspath(source_path))
        stem = tail.rpartition(".")[0] or tail
        drive, head = os.path.splitdrive(head)
        return os.path.join(cache_dir, head.lstrip(os.sep), f"{stem}.{tag}-frontrun-{key}.pyc")
    try:
        # Reuses CPython's rules for __pycache__ and sys.pycache_prefix.
        standard = importlib.util.cache_from_source(source_path, optimization="")
    except (NotImplementedError, ValueError):
        return None
    assert standard.endswith(".pyc")
    return f"{standard[:-4]}-frontrun-{key}.pyc"


def load(path: str | None, source_path: str, source_hash: bytes) -> types.CodeType | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        STATS["misses"] += 1
        return None
    if (
        len(data) < HEADER_SIZE
        or data[:4] != MAGIC
        or data[4:8] != CHECKED_HASH_FLAGS
        or data[8:16] != source_hash
    ):
        STATS["misses"] += 1
        return None
    body = memoryview(data)[HEADER_SIZE:-CRC_SIZE]
    if len(data) < HEADER_SIZE + CRC_SIZE or _crc(body) != data[-CRC_SIZE:]:
        STATS["misses"] += 1
        return None
    try:
        code = marshal.loads(body)
    except Exception:  # a file written by another tool under our name: whatever marshal raises
        STATS["misses"] += 1
        return None
    if not isinstance(code, types.CodeType):
        STATS["misses"] += 1
        return None
    STATS["hits"] += 1
    return fix_filename(code, source_path)


def _crc(body) -> bytes:
    """The CRC-32 that follows the marshal data ``body`` in a cache file."""
    return binascii.crc32(body).to_bytes(CRC_SIZE, "little")


def fix_filename(code: types.CodeType, filename: str) -> types.CodeType:
    if code.co_filename == filename:
        return code
    if _fix_co_filename is not None:
        _fix_co_filename(code, filename)  # in place, recursive (what importlib does for pycs)
        return code
    return _replace_filenames(code, filename)


def _replace_filenames(code: types.CodeType, filename: str) -> types.CodeType:
    return code.replace(
        co_filename=filename,
        co_consts=tuple(
            _replace_filenames(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
        ),
    )


def pyc_bytes(code: types.CodeType, source_hash: bytes, magic: bytes = MAGIC) -> bytes:
    return magic + CHECKED_HASH_FLAGS + source_hash + marshal.dumps(code)


def _file_mode(source_path: str) -> int:
    # As importlib does: the pyc gets the source's permissions, plus owner-write so it can be replaced.
    try:
        mode = os.stat(source_path).st_mode
    except OSError:
        mode = 0o666
    return (mode | 0o200) & 0o666


def store(path: str | None, source_path: str, source_hash: bytes, code: types.CodeType) -> bool:
    """Write the cache file atomically; False (and no error) when it cannot or must not be written."""
    if path is None or sys.dont_write_bytecode:
        return False
    directory = os.path.dirname(path)
    with _lock:
        if directory in _unwritable_dirs:
            return False
    try:
        data = pyc_bytes(code, source_hash)
    except ValueError:  # a constant that marshal does not support
        STATS["write_failures"] += 1
        return False
    data += _crc(memoryview(data)[HEADER_SIZE:])
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        _give_up_on(directory)
        return False
    temp = f"{path}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(temp, flags, _file_mode(source_path))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR):
            _give_up_on(directory)
        STATS["write_failures"] += 1
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except OSError:
        STATS["write_failures"] += 1
        try:
            os.unlink(temp)
        except OSError:
            pass
        return False
    STATS["writes"] += 1
    return True


def _give_up_on(directory: str) -> None:
    STATS["write_failures"] += 1
    with _lock:
        _unwritable_dirs.add(directory)
