//! Round-trips every .pyc under the given directories through `read_pyc` / `write_pyc` and
//! reports, per Python version, how many came back byte-identical.
//!
//!     cargo run --release --example marshal_check -- [--emit OUT] DIR...
//!
//! With `--emit OUT`, also writes for each pyc two rebuilt marshal payloads that the real
//! interpreter should load as an equal code object (checked by a small Python script):
//! `OUT/<ver>/<n>.norefs` (all sharing dropped) and `OUT/<ver>/<n>.fresh` (every field of every
//! code object replaced by a new, unflagged copy, as a rewriter does), plus `OUT/<ver>/index`
//! listing `n path`.

use frontrun::marshal::{self, Obj, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "pyc") {
            out.push(path);
        }
    }
}

/// Every field of every code object becomes a fresh copy without FLAG_REF: the shared
/// originals disappear, so later references to them must be written inline.
fn refresh_code_fields(obj: &mut Obj) {
    match &mut obj.value {
        Value::Code(code) => {
            let fields: [&mut Obj; 3] = [&mut code.names, &mut code.filename, &mut code.linetable];
            for f in fields {
                *f = Obj::new(f.resolve().value.clone());
            }
            if let Some(t) = code.exceptiontable_mut() {
                *t = Obj::new(t.resolve().value.clone());
            }
            code.code = Obj::bytes(code.code.as_bytes().unwrap().to_vec());
            refresh_code_fields(&mut code.consts);
        }
        Value::Tuple { items, .. } => items.iter_mut().for_each(refresh_code_fields),
        _ => {}
    }
}

#[derive(Default)]
struct Counts {
    files: usize,
    identical: usize,
    read_errors: usize,
    differ: usize,
    bytes: usize,
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let emit = match args.iter().position(|a| a == "--emit") {
        Some(i) => {
            let dir = PathBuf::from(args.remove(i + 1));
            args.remove(i);
            Some(dir)
        }
        None => None,
    };
    let mut files = Vec::new();
    for dir in &args {
        walk(Path::new(dir), &mut files);
    }
    files.sort();
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut indexes: BTreeMap<String, String> = BTreeMap::new();
    let started = Instant::now();
    let mut failures_shown = 0;
    for (n, path) in files.iter().enumerate() {
        let data = std::fs::read(path).unwrap();
        let ver = match marshal::version_for_magic(u16::from_le_bytes([data[0], data[1]])) {
            Some(v) => v.to_string(),
            None => "unknown".to_string(),
        };
        let c = counts.entry(ver.clone()).or_default();
        c.files += 1;
        c.bytes += data.len();
        let pyc = match marshal::read_pyc(&data) {
            Ok(p) => p,
            Err(e) => {
                c.read_errors += 1;
                if failures_shown < 10 {
                    failures_shown += 1;
                    eprintln!("read error {}: {e}", path.display());
                }
                continue;
            }
        };
        match marshal::write_pyc(&pyc) {
            Ok(out) if out == data => c.identical += 1,
            Ok(out) => {
                c.differ += 1;
                if failures_shown < 10 {
                    failures_shown += 1;
                    let at = out.iter().zip(&data).position(|(a, b)| a != b).unwrap_or(out.len().min(data.len()));
                    eprintln!("differs {} at byte {at} (len {} vs {})", path.display(), out.len(), data.len());
                }
            }
            Err(e) => {
                c.differ += 1;
                eprintln!("write error {}: {e}", path.display());
            }
        }
        if let Some(root) = &emit {
            let dir = root.join(&ver);
            std::fs::create_dir_all(&dir).unwrap();
            let norefs = marshal::dumps_without_refs(&pyc.code, pyc.version).unwrap();
            std::fs::write(dir.join(format!("{n}.norefs")), norefs).unwrap();
            let mut fresh = pyc.code.clone();
            refresh_code_fields(&mut fresh);
            std::fs::write(dir.join(format!("{n}.fresh")), marshal::dumps(&fresh, pyc.version).unwrap()).unwrap();
            indexes.entry(ver).or_default().push_str(&format!("{n} {}\n", path.display()));
        }
    }
    if let Some(root) = &emit {
        for (ver, index) in &indexes {
            std::fs::write(root.join(ver).join("index"), index).unwrap();
        }
    }
    for (ver, c) in &counts {
        println!(
            "python {ver}: {} pyc files ({:.1} MB): {} identical, {} differ, {} read errors",
            c.files,
            c.bytes as f64 / 1e6,
            c.identical,
            c.differ,
            c.read_errors
        );
    }
    eprintln!("{} files in {:.2?}", files.len(), started.elapsed());
}
