//! Decode + encode, and the whole rewrite under `shared`, of a corpus of real code objects:
//! every code object of a Python stdlib, dumped by the interpreter named in
//! `FRONTRUN_BENCH_PYTHON` (default `python3`) at start-up. Prints the rewrite's time as a
//! ratio to the round trip's. Without a usable interpreter the bench says so and measures
//! nothing.

use std::process::Command;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use frontrun::decode::{decode, RawCode};
use frontrun::encode::encode;
use frontrun::rewrite::{rewrite_parts, MethodTables, Parts, Policy};
use frontrun::tables::{self, OpTable};

/// Prints, per code object: 4-byte little-endian lengths and the bytes of co_code,
/// co_exceptiontable and co_linetable, then co_firstlineno, the number of constants, and the
/// names and deref names (a count, then each as length and UTF-8 bytes).
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
def strings(names):
    out.write(struct.pack("<I", len(names)))
    for n in names:
        b = n.encode("utf-8", "surrogatepass")
        out.write(struct.pack("<I", len(b)) + b)
def deref_names(c):
    if sys.version_info < (3, 11):
        return c.co_cellvars + c.co_freevars
    cells = [n for n in c.co_cellvars if n not in c.co_varnames]
    return c.co_varnames + tuple(cells) + c.co_freevars
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
        out.write(struct.pack("<iI", c.co_firstlineno, len(c.co_consts)))
        strings(c.co_names)
        strings(deref_names(c))
"#;

fn raw(e: &Entry) -> RawCode<'_> {
    RawCode { code: &e.code, exception_table: &e.exception_table, line_table: &e.line_table, first_line: e.first_line }
}

struct Entry {
    code: Vec<u8>,
    exception_table: Vec<u8>,
    line_table: Vec<u8>,
    first_line: i32,
    const_count: usize,
    names: Vec<String>,
    deref_names: Vec<String>,
}

/// Reads the dump's little-endian numbers and length-prefixed fields.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Vec<u8> {
        let s = self.data[self.at..self.at + n].to_vec();
        self.at += n;
        s
    }

    fn number(&mut self) -> usize {
        u32::from_le_bytes(self.take(4).try_into().unwrap()) as usize
    }

    fn field(&mut self) -> Vec<u8> {
        let len = self.number();
        self.take(len)
    }

    fn strings(&mut self) -> Vec<String> {
        let count = self.number();
        (0..count).map(|_| String::from_utf8_lossy(&self.field()).into_owned()).collect()
    }
}

fn corpus() -> Option<(&'static OpTable, Vec<Entry>)> {
    let python = std::env::var("FRONTRUN_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python).arg("-c").arg(DUMP).output().ok()?;
    if !out.status.success() || out.stdout.len() < 2 {
        return None;
    }
    let data = out.stdout;
    let table = tables::for_version(data[0], data[1])?;
    let mut reader = Reader { data: &data, at: 2 };
    let mut entries = Vec::new();
    while reader.at < data.len() {
        let (code, exception_table, line_table) = (reader.field(), reader.field(), reader.field());
        let first_line = reader.number() as i32;
        let const_count = reader.number();
        let (names, deref_names) = (reader.strings(), reader.strings());
        entries.push(Entry { code, exception_table, line_table, first_line, const_count, names, deref_names });
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
    let round_trip = || {
        for e in &entries {
            black_box(encode(&decode(table, raw(e)).unwrap()).unwrap());
        }
    };
    group.bench_function("decode+encode", |b| b.iter(round_trip));
    let methods = MethodTables::new(&[]);
    let names: Vec<Vec<&str>> = entries.iter().map(|e| e.names.iter().map(String::as_str).collect()).collect();
    let rewrite_all = || {
        for (e, names) in entries.iter().zip(&names) {
            let parts = Parts {
                code: &e.code,
                exception_table: &e.exception_table,
                line_table: &e.line_table,
                first_line: e.first_line,
                names,
                const_count: e.const_count,
                deref_names: &e.deref_names,
            };
            black_box(rewrite_parts(table, &parts, Policy::Shared, &methods).unwrap());
        }
    };
    group.bench_function("rewrite shared", |b| b.iter(rewrite_all));
    group.finish();
    // The ratio, from the best of a few runs of each, interleaved.
    let (mut base, mut rewrite) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let t = std::time::Instant::now();
        round_trip();
        base = base.min(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        rewrite_all();
        rewrite = rewrite.min(t.elapsed().as_secs_f64());
    }
    eprintln!(
        "rewrite shared: {:.3}s = {:.2}x decode+encode ({:.3}s), {:.1} us per code object",
        rewrite,
        rewrite / base,
        base,
        rewrite * 1e6 / entries.len() as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
