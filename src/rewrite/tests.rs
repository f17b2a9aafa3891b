//! Pure-Rust checks of the rewriter on hand-built code for every embedded table. The real
//! coverage is in tests/python (fixture programs, exact event lists, CPython's test suite).

use super::*;
use crate::encode;
use crate::instr::{Code, Instr};
use crate::tables;

fn op(table: &crate::tables::OpTable, name: &str) -> u8 {
    table.code(name).unwrap_or_else(|| panic!("{name} in {:?}", table.version))
}

/// `def f(o): return o.attr.append(o)` by hand: a plain load, a method call, a return.
fn sample(table: &'static crate::tables::OpTable) -> Code {
    let mut code = Code::new(table, 1);
    let shift = |name: &str| match table.by_name(name).map(|o| o.arg) {
        Some(crate::tables::ArgKind::Name { shift }) => shift,
        _ => 0,
    };
    if let Some(resume) = table.code("RESUME") {
        code.instrs.push(Instr::new(resume, 0));
    }
    code.instrs.push(Instr::new(op(table, "LOAD_FAST"), 0));
    code.instrs.push(Instr::new(op(table, "LOAD_ATTR"), 0 << shift("LOAD_ATTR")));
    match table.code("LOAD_METHOD") {
        Some(lm) => code.instrs.push(Instr::new(lm, 1)),
        None => code.instrs.push(Instr::new(op(table, "LOAD_ATTR"), 1 << 1 | 1)),
    }
    code.instrs.push(Instr::new(op(table, "LOAD_FAST"), 0));
    if let Some(precall) = table.code("PRECALL") {
        code.instrs.push(Instr::new(precall, 1));
        code.instrs.push(Instr::new(op(table, "CALL"), 1));
    } else if let Some(call) = table.code("CALL") {
        code.instrs.push(Instr::new(call, 1));
    } else {
        code.instrs.push(Instr::new(op(table, "CALL_METHOD"), 1));
    }
    code.instrs.push(Instr::new(op(table, "RETURN_VALUE"), 0));
    code
}

fn input<'a>(names: &'a [&'a str], methods: &'a MethodTables, policy: Policy) -> Input<'a> {
    Input { names, const_count: 1, deref_name: &|_| None, policy, methods }
}

#[test]
fn every_table_has_facts_and_the_ops_injection_needs() {
    for t in tables::all() {
        let facts = Facts::for_table(t).expect("facts for every embedded table");
        let ops = ops::for_table(t);
        assert!(ops.load_global.is_some() && ops.load_attr.is_some());
        assert!(t.op(ops.jump_if_false).and_then(|o| o.jump).is_some());
        assert!(t.code(facts.cell_push).is_some(), "{:?}", t.version);
        assert_eq!(ops.copy.is_some(), ops.swap.is_some());
        assert!(ops.copy.is_some() || (ops.dup_top.is_some() && ops.rot_n.is_some()));
    }
}

#[test]
fn site_kinds_round_trip() {
    for k in SiteKind::ALL {
        assert_eq!(SiteKind::from_code(k as u8), Some(k));
        assert!(!k.event().is_empty());
    }
    assert_eq!(SiteKind::from_code(0), None);
    assert_eq!(Policy::parse("shared"), Some(Policy::Shared));
    assert_eq!(Policy::parse("nope"), None);
    assert!(Policy::Resources < Policy::Shared && Policy::Shared < Policy::All);
}

#[test]
fn method_call_is_stashed_and_checked_on_every_version() {
    let names = vec!["attr", "append"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        let code = sample(t);
        let n = code.instrs.len();
        let rw = rewrite(code, &input(&names, &methods, Policy::Shared)).unwrap().expect("sites");
        let kinds: Vec<SiteKind> = rw.sites.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, vec![SiteKind::AttrLoad, SiteKind::Call], "{:?}", t.version);
        assert_eq!(rw.new_names, vec![GUARD_NAME, REPORT_NAME]);
        assert_eq!(rw.injected.iter().filter(|i| !**i).count(), n);
        verify::check(&rw.code).unwrap();
        let encoded = encode::encode(&rw.code).unwrap();
        assert!(encoded.stacksize >= 5, "{:?}: {}", t.version, encoded.stacksize);
    }
}

#[test]
fn nothing_selected_is_none() {
    let names = vec!["attr", "append"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        assert!(rewrite(sample(t), &input(&names, &methods, Policy::Resources)).unwrap().is_none());
        // Already rewritten code is left alone.
        let mut names = names.clone();
        names.push(GUARD_NAME);
        assert!(rewrite(sample(t), &input(&names, &methods, Policy::All)).unwrap().is_none());
    }
}

#[test]
fn resource_calls_get_before_and_after_reports() {
    let names = vec!["attr", "cursor"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        let rw = rewrite(sample(t), &input(&names, &methods, Policy::Resources)).unwrap().unwrap();
        let kinds: Vec<SiteKind> = rw.sites.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, vec![SiteKind::Call, SiteKind::CallReturn], "{:?}", t.version);
        verify::check(&rw.code).unwrap();
    }
}

/// The 3.10 fetch (ROT_N rotations around a DUP_TOP) leaves the stack as it was plus a copy of
/// the value `depth` slots down on top.
#[test]
fn rot_n_fetch_copies_without_disturbing() {
    let t = tables::for_version(3, 10).unwrap();
    let ops = ops::for_table(t);
    let inj = Injector { table: t, ops, facts: Facts::for_table(t).unwrap(), on_name: 0, report_name: 1 };
    for depth in 1..8u32 {
        let mut seq = Vec::new();
        inj.call(&[sites::Fetch::Depth(depth)], 0, Default::default(), &mut seq);
        // Simulate: the stack holds 10 distinct values, then LOAD_GLOBAL pushes the callable.
        let mut stack: Vec<i32> = (0..10).collect();
        for instr in &seq {
            let name = t.op(instr.op).unwrap().name;
            match name {
                "LOAD_GLOBAL" => stack.push(-1),
                "LOAD_CONST" => stack.push(-2),
                "DUP_TOP" => stack.push(*stack.last().unwrap()),
                "ROT_N" => {
                    let k = instr.arg as usize;
                    let top = stack.pop().unwrap();
                    let at = stack.len() + 1 - k;
                    stack.insert(at, top);
                }
                "CALL_FUNCTION" => {
                    let args: Vec<i32> = stack.split_off(stack.len() - instr.arg as usize);
                    assert_eq!(stack.pop(), Some(-1), "callable below the arguments");
                    // The value fetched, then the site constant.
                    assert_eq!(args, vec![10 - depth as i32, -2], "depth {depth}");
                    stack.push(-3);
                }
                "POP_TOP" => {
                    assert_eq!(stack.pop(), Some(-3));
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(stack, (0..10).collect::<Vec<_>>());
    }
}
