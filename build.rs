//! Embeds `opcode_tables/cpython-*.txt` as static Rust tables (see `src/tables.rs`).
//! Parsing happens here, at build time, so a malformed table is a build error, not a runtime one.

use std::fmt::Write as _;
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new("opcode_tables");
    println!("cargo:rerun-if-changed=opcode_tables");
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("opcode_tables/ missing")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut out = String::from("pub static TABLES: &[OpTable] = &[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(path).unwrap();
        out.push_str(&table(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    out.push_str("];\n");
    fs::write(Path::new(&env::var("OUT_DIR").unwrap()).join("tables_gen.rs"), out).unwrap();
}

fn table(text: &str) -> Result<String, String> {
    let mut header = std::collections::BTreeMap::new();
    let mut ops: Vec<Option<String>> = vec![None; 256];
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let key = words.next().unwrap();
        if key != "op" {
            header.insert(key.to_string(), words.next().ok_or(format!("no value: {line}"))?.to_string());
            continue;
        }
        let name = words.next().ok_or("op without name")?;
        let code: usize = words.next().ok_or("op without code")?.parse().map_err(|e| format!("{line}: {e}"))?;
        let fields: std::collections::HashMap<_, _> = words.filter_map(|w| w.split_once('=')).collect();
        let get = |k: &str| fields.get(k).copied().ok_or(format!("{name}: missing {k}"));
        let arg = match get("arg")?.split_once(':').unwrap_or((get("arg")?, "")) {
            ("none", _) => "ArgKind::None".to_string(),
            ("other", _) => "ArgKind::Other".into(),
            ("jump", _) => "ArgKind::Jump".into(),
            ("const", _) => "ArgKind::Const".into(),
            ("free", _) => "ArgKind::Free".into(),
            ("local", "one") => "ArgKind::Local".into(),
            ("local", "pair") => "ArgKind::LocalPair".into(),
            ("name", s) => format!("ArgKind::Name {{ shift: {s} }}"),
            ("compare", s) => format!("ArgKind::Compare {{ shift: {s} }}"),
            other => return Err(format!("{name}: unknown arg kind {other:?}")),
        };
        let jump = match get("jump")? {
            "-" => "None",
            "fwd" => "Some(JumpDir::Forward)",
            "back" => "Some(JumpDir::Backward)",
            "abs" => "Some(JumpDir::Absolute)",
            j => return Err(format!("{name}: unknown jump {j}")),
        };
        let flow = match get("flow")? {
            "-" => "Flow::Next",
            "branch" => "Flow::Branch",
            "goto" => "Flow::Goto",
            "end" => "Flow::End",
            "setup" => "Flow::Setup",
            f => return Err(format!("{name}: unknown flow {f}")),
        };
        let (nojump, jumped) = get("stack")?.split_once('/').ok_or(format!("{name}: stack needs a/b"))?;
        ops[code] = Some(format!(
            "Some(OpInfo {{ name: {name:?}, code: {code}, caches: {}, arg: {arg}, jump: {jump}, flow: {flow}, stack: [{}, {}] }})",
            get("caches")?,
            stack(nojump)?,
            stack(jumped)?
        ));
    }
    let h = |k: &str| header.get(k).cloned().ok_or(format!("missing header {k}"));
    let (major, minor) =
        h("version")?.split_once('.').map(|(a, b)| (a.to_string(), b.to_string())).ok_or("bad version")?;
    let mut s = String::new();
    write!(
        s,
        "OpTable {{ version: ({major}, {minor}), magic: {}, marshal_version: {}, extended_arg: {}, have_argument: {}, cache_tag: {:?}, locations: {}, exception_table: {}, deref: {}, ops: [",
        h("magic")?,
        h("marshal_version")?,
        h("extended_arg")?,
        h("have_argument")?,
        h("cache_tag")?,
        match h("location_table")?.as_str() { "pep657" => "LocationFormat::Pep657", _ => "LocationFormat::LineTable310" },
        h("exception_table")? == "yes",
        match h("deref_index")?.as_str() { "localsplus" => "DerefIndex::LocalsPlus", _ => "DerefIndex::CellsThenFrees" },
    )
    .unwrap();
    for op in ops {
        s.push_str(op.as_deref().unwrap_or("None"));
        s.push_str(",\n");
    }
    s.push_str("] },\n");
    Ok(s)
}

fn stack(spec: &str) -> Result<String, String> {
    if spec == "invalid" {
        return Ok("StackEffect::Invalid".into());
    }
    if let Some(cells) = spec.strip_prefix("table:") {
        let mut values = Vec::new();
        for cell in cells.split(',') {
            let (v, n) = cell.split_once('*').unwrap_or((cell, "1"));
            let n: usize = n.parse().map_err(|e| format!("{spec}: {e}"))?;
            let v = if v == "x" { "None".to_string() } else { format!("Some({v})") };
            values.extend(std::iter::repeat_n(v, n));
        }
        return Ok(format!("StackEffect::Table(&[{}])", values.join(",")));
    }
    let parts: Vec<&str> = spec.split(';').collect();
    match parts.as_slice() {
        [c] => Ok(format!("StackEffect::Const({c})")),
        [c, w, h] => Ok(format!("StackEffect::Bits {{ c: {c}, w: [{w}], high: {h} }}")),
        _ => Err(format!("bad stack spec {spec}")),
    }
}
