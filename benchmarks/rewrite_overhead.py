"""What rewriting costs: run time of rewritten code with nothing listening, and rewrite time.

    python benchmarks/rewrite_overhead.py [--quick] [--no-stdlib]

Prints, for an attribute-heavy loop and a method-call-heavy loop, the time of the original
code and the ratios of: the same code rewritten under a policy that selects nothing in it
(the same code object: 1.00x by construction), rewritten under ``shared`` with the report
guard off (goal <= 1.3x), and with the guard on but no listener (every site calls the native,
which returns at once). Then the time to rewrite every stdlib module under ``shared`` and
``all`` against the time to ``compile()`` it (goal <= 10%), on the calling thread alone
(``FRONTRUN_REWRITE_THREADS=1``) and with the default helper threads (one per core); and the
part of that which is CPython's own work whatever the rewriter does (reading ``co_code``,
``code.replace``).
"""

import argparse
import glob
import os
import sys
import sysconfig
import textwrap
import time
import types
import warnings

from frontrun import _native

WORKLOAD = textwrap.dedent(
    """
    class Point:
        def __init__(self):
            self.x = 0
            self.y = 0
            self.total = 0

    def attributes(p, n):
        for i in range(n):
            p.x = p.x + i
            p.y = p.y + p.x
            p.total += p.x - p.y
            if p.total > 100000:
                p.total = 0
        return p.total

    def methods(items, n):
        for i in range(n):
            items.append(i)
            if len(items) > 100:
                items.clear()
        return len(items)

    def locals_only(n):
        total = 0
        for i in range(n):
            total += i * i
        return total
    """
)


def best_times(variants, repeat):
    """Minimum time of each variant over `repeat` interleaved rounds (a shared machine's noise
    hits every variant alike)."""
    best = [float("inf")] * len(variants)
    for _ in range(repeat):
        for k, (fn, args) in enumerate(variants):
            t0 = time.perf_counter()
            fn(*args)
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def build(policy):
    code = compile(WORKLOAD, "<workload>", "exec")
    if policy is not None:
        code = _native.rewrite_code(code, policy, ())
    namespace = {}
    exec(code, namespace)
    return namespace


def run_loops(n):
    original = build(None)
    unselected = build("resources")  # nothing in the workload is a resource call
    shared = build("shared")
    assert unselected["attributes"].__code__ is original["attributes"].__code__ or (
        unselected["attributes"].__code__.co_code == original["attributes"].__code__.co_code
    )
    print(f"Python {sys.version.split()[0]}: n = {n}")
    print(f"{'workload':<12} {'original':>10} {'unselected':>11} {'guard off':>10} {'guard on':>10}")
    for name, make_args in [
        ("attributes", lambda ns: (ns["Point"](), n)),
        ("methods", lambda ns: ([], n)),
        ("locals_only", lambda ns: (n,)),
    ]:
        base, t_unselected, t_off = best_times(
            [(ns[name], make_args(ns)) for ns in (original, unselected, shared)], repeat=15
        )
        _native._reporting_activate()
        try:
            (t_on,) = best_times([(shared[name], make_args(shared))], repeat=5)
        finally:
            _native._reporting_deactivate()
        print(
            f"{name:<12} {base * 1e3:>8.2f}ms {t_unselected / base:>10.2f}x {t_off / base:>9.2f}x {t_on / base:>9.2f}x"
        )


def stdlib_rewrite_time(limit):
    lib = sysconfig.get_paths()["stdlib"]
    files = sorted(f for f in glob.glob(os.path.join(lib, "**", "*.py"), recursive=True) if "site-packages" not in f)
    if limit:
        files = files[:limit]
    sources = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            try:
                with open(path, "rb") as f:
                    source = f.read()
                compile(source, path, "exec", dont_inherit=True)
                sources.append((source, path))
            except (SyntaxError, ValueError, UnicodeDecodeError):
                continue
    # Each rewrite gets freshly compiled code, as the import hook does: the first read of
    # `co_code` builds it (3.11+), and that belongs to the rewrite.
    def fresh():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            codes = [compile(source, path, "exec", dont_inherit=True) for source, path in sources]
            return codes, time.perf_counter() - t0

    cores = os.cpu_count() or 1
    helpers = os.environ.get("FRONTRUN_REWRITE_THREADS", str(min(cores, 8)))
    saved = os.environ.get("FRONTRUN_REWRITE_THREADS")
    try:
        for threads in ("1", helpers):
            os.environ["FRONTRUN_REWRITE_THREADS"] = threads
            for policy in ("shared", "all"):
                codes, t_compile = fresh()
                t0 = time.perf_counter()
                for code in codes:
                    _native.rewrite_code(code, policy, ())
                t = time.perf_counter() - t0
                print(
                    f"  {len(codes)} modules: compile() {t_compile:.2f}s, rewrite {policy:<7} on {threads} thread(s)"
                    f" {t:.2f}s = {100 * t / t_compile:.0f}% of compile()"
                )
    finally:
        if saved is None:
            del os.environ["FRONTRUN_REWRITE_THREADS"]
        else:
            os.environ["FRONTRUN_REWRITE_THREADS"] = saved
    cpython_floor(fresh)


def code_objects(code):
    yield code
    for k in code.co_consts:
        if isinstance(k, types.CodeType):
            yield from code_objects(k)


def cpython_floor(fresh):
    """The part of a rewrite that is CPython's own work, however fast the rewriter: the first
    read of `co_code` (3.11+ builds it) and `code.replace` with the rewritten parts (the new
    code object, its quickening, its interned constants), under `shared`."""
    codes, _ = fresh()
    rewritten = [_native.rewrite_code(code, "shared", ()) for code in codes]
    codes, t_compile = fresh()
    t0 = time.perf_counter()
    for code in codes:
        for c in code_objects(code):
            c.co_code
    t_read = time.perf_counter() - t0
    fields = ["co_code", "co_linetable", "co_consts", "co_names", "co_stacksize"]
    if hasattr(codes[0], "co_exceptiontable"):
        fields.append("co_exceptiontable")
    replaced = []
    for code, new in zip(codes, rewritten):
        for old, rw in zip(code_objects(code), code_objects(new)):
            if old is not rw:
                replaced.append((old, {f: getattr(rw, f) for f in fields}))
    t0 = time.perf_counter()
    for old, parts in replaced:
        old.replace(**parts)
    t_replace = time.perf_counter() - t0
    print(
        f"  CPython's own part of a rewrite (shared): walking the code objects and reading co_code {100 * t_read / t_compile:.1f}%"
        f" + code.replace of {len(replaced)} rewritten code objects {100 * t_replace / t_compile:.1f}%"
        f" = {100 * (t_read + t_replace) / t_compile:.1f}% of compile()"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller loops and a stdlib sample")
    parser.add_argument("--no-stdlib", action="store_true")
    args = parser.parse_args()
    run_loops(20_000 if args.quick else 100_000)
    if not args.no_stdlib:
        stdlib_rewrite_time(300 if args.quick else 0)


if __name__ == "__main__":
    main()
