//! Decode + encode of a corpus of real code objects: every code object of a Python stdlib,
//! dumped by the interpreter named in `FRONTRUN_BENCH_PYTHON` (default `python3`) at start-up.
//! Without a usable interpreter the bench says so and measures nothing.

use std::process::Command;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use frontrun::decode::{decode, RawCode};
use frontrun::encode::encode;
use frontrun::tables::{self, OpTable};

/// Prints, per code object: 4-byte little-endian lengths and the bytes of co_code,
/// co_exceptiontable and co_linetable, then co_firstlineno.
const DUMP: &str = r#"
import glob, os, struct, sys, sysconfig, types, warnings
warnings.simplefilter("ignore")
out = sys.stdout.buffer
out.write(bytes(sys.version_info[:2]))
lib = sysconfig.get_paths()["stdlib"]
def walk(c):
    yield c
    for k in c.co_consts:
        if isinstance(k, types.CodeType):
            yield from walk(k)
for path in sorted(glob.glob(os.path.join(lib, "**", "*.py"), recursive=True)):
    if "site-packages" in path:
        continue
    try:
        top = compile(open(path, "rb").read(), path, "exec", dont_inherit=True)
    except Exception:
        continue
    for c in walk(top):
        for b in (c.co_code, getattr(c, "co_exceptiontable", b""), c.co_linetable):
            out.write(struct.pack("<I", len(b)) + b)
        out.write(struct.pack("<i", c.co_firstlineno))
"#;

fn raw(e: &Entry) -> RawCode<'_> {
    RawCode { code: &e.code, exception_table: &e.exception_table, line_table: &e.line_table, first_line: e.first_line }
}

struct Entry {
    code: Vec<u8>,
    exception_table: Vec<u8>,
    line_table: Vec<u8>,
    first_line: i32,
}

fn corpus() -> Option<(&'static OpTable, Vec<Entry>)> {
    let python = std::env::var("FRONTRUN_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python).arg("-c").arg(DUMP).output().ok()?;
    if !out.status.success() || out.stdout.len() < 2 {
        return None;
    }
    let data = out.stdout;
    let table = tables::for_version(data[0], data[1])?;
    let mut at = 2;
    let mut take = |n: usize| {
        let s = data[at..at + n].to_vec();
        at += n;
        s
    };
    let mut entries = Vec::new();
    let mut rest = data.len() - 2;
    while rest > 0 {
        let mut field = || {
            let len = u32::from_le_bytes(take(4).try_into().unwrap()) as usize;
            take(len)
        };
        let (code, exception_table, line_table) = (field(), field(), field());
        let first_line = i32::from_le_bytes(take(4).try_into().unwrap());
        rest -= 16 + code.len() + exception_table.len() + line_table.len();
        entries.push(Entry { code, exception_table, line_table, first_line });
    }
    Some((table, entries))
}

fn bench(c: &mut Criterion) {
    let Some((table, entries)) = corpus() else {
        eprintln!("no corpus: set FRONTRUN_BENCH_PYTHON to a CPython 3.10-3.15 interpreter");
        return;
    };
    let bytes: usize = entries.iter().map(|e| e.code.len()).sum();
    eprintln!(
        "corpus: {} code objects, {} bytes of co_code (Python {}.{})",
        entries.len(),
        bytes,
        table.version.0,
        table.version.1
    );
    for e in &entries {
        let out = encode(&decode(table, raw(e)).unwrap()).unwrap();
        assert!(out.code == e.code && out.line_table == e.line_table && out.exception_table == e.exception_table);
    }
    let mut group = c.benchmark_group("stdlib");
    group.sample_size(10);
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            for e in &entries {
                black_box(decode(table, raw(e)).unwrap());
            }
        })
    });
    let decoded: Vec<_> = entries.iter().map(|e| decode(table, raw(e)).unwrap()).collect();
    group.bench_function("encode", |b| {
        b.iter(|| {
            for d in &decoded {
                black_box(encode(d).unwrap());
            }
        })
    });
    group.bench_function("decode+encode", |b| {
        b.iter(|| {
            for e in &entries {
                black_box(encode(&decode(table, raw(e)).unwrap()).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
