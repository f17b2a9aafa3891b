//! insta snapshots of the fixture programs' disassembly, per CPython version, with no
//! interpreter at test time: the pycs in `fixtures/pyc/<version>/` (made by
//! `fixtures/pyc/make_pycs.py`) are read by the marshal layer and decoded with that version's table.
//! A change to decoding, the tables or the marshal reader shows up as a snapshot diff.

use std::fmt::Write as _;
use std::path::Path;

use frontrun::decode::{decode, RawCode};
use frontrun::encode::layout;
use frontrun::marshal::{self, Obj, Value};
use frontrun::tables::{self, ArgKind};

fn short(obj: &Obj) -> String {
    let obj = obj.resolve();
    if let Some(s) = obj.as_str() {
        let s: String = s.chars().take(24).collect();
        return format!("{s:?}");
    }
    if let Some(n) = obj.as_i64() {
        return n.to_string();
    }
    match &obj.value {
        Value::None => "None".into(),
        Value::True => "True".into(),
        Value::False => "False".into(),
        Value::Code(code) => format!("<code {}>", code.name.as_str().unwrap_or_default()),
        Value::Tuple { items, .. } => format!("({} items)", items.len()),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        _ => "<const>".into(),
    }
}

fn listing(code: &marshal::Code, version: (u8, u8), out: &mut String) {
    let table = tables::for_version(version.0, version.1).expect("table");
    let bytes = code.code.as_bytes().expect("co_code");
    let raw = RawCode {
        code: bytes,
        exception_table: code.exceptiontable().and_then(|t| t.as_bytes()).unwrap_or(&[]),
        line_table: code.linetable.as_bytes().expect("co_linetable"),
        first_line: code.firstlineno,
    };
    let decoded = decode(table, raw).expect("fixture decodes");
    let lay = layout(&decoded).expect("fixture lays out");
    let targets = decoded.label_targets();
    let names: Vec<String> = code.names.as_tuple().unwrap_or(&[]).iter().map(short).collect();
    let consts = code.consts.as_tuple().unwrap_or(&[]);
    writeln!(out, "== {} (line {})", code.name.as_str().unwrap_or_default(), code.firstlineno).unwrap();
    for (i, instr) in decoded.instrs.iter().enumerate() {
        let info = table.op(instr.op).expect("known op");
        let offset = 2 * (lay.starts[i] + lay.prefixes[i] as u32);
        let arg = lay.args[i];
        let detail = match info.arg {
            _ if instr.target.is_some() => {
                let t = targets[instr.target.unwrap().0 as usize].expect("target");
                format!("to {}", 2 * (lay.starts[t] + lay.prefixes[t] as u32))
            }
            ArgKind::Const => consts.get(arg as usize).map(short).unwrap_or_default(),
            ArgKind::Name { shift } => names.get((arg >> shift) as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let line = instr.position.line.map_or("-".into(), |l| l.to_string());
        let arg = if info.has_arg() { arg.to_string() } else { String::new() };
        writeln!(out, "{offset:>5} {line:>4} {:<28} {arg:>5} {detail}", info.name).unwrap();
    }
    for (start, end, h) in
        decoded.exception_ranges().iter().map(|r| (r.start, r.end, decoded.handlers[r.handler as usize]))
    {
        let t = targets[h.target.0 as usize].expect("handler");
        writeln!(out, "  except {start}..{end} -> #{t} depth {} lasti {}", h.depth, h.lasti).unwrap();
    }
    for c in consts {
        if let Some(inner) = c.resolve().as_code() {
            listing(inner, version, out);
        }
    }
}

#[test]
fn fixture_disassembly_per_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pyc");
    let mut versions: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures/pyc")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir()) // not make_pycs.py
        .collect();
    versions.sort();
    assert_eq!(versions.len(), 6, "one pyc directory per supported version");
    for dir in versions {
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let pyc = marshal::read_pyc(&std::fs::read(&file).unwrap()).expect("fixture pyc reads");
            let version = (pyc.version.major, pyc.version.minor);
            let mut text = String::new();
            listing(pyc.code.as_code().expect("module code"), version, &mut text);
            let name = format!("{}.{}_{}", version.0, version.1, file.file_stem().unwrap().to_string_lossy());
            insta::assert_snapshot!(name, text);
        }
    }
}
