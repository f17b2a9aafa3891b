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
    Input { names, const_count: 1, deref_names: &[], policy, methods, versioning: true }
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
        assert_eq!(verify::check(&rw.code), Ok(rw.stacksize));
        let encoded = encode::encode(&rw.code).unwrap();
        assert!(encoded.stacksize >= 5, "{:?}: {}", t.version, encoded.stacksize);
        // The stack check's highest height is the flow analysis' stack size.
        assert_eq!(rw.stacksize, encoded.stacksize, "{:?}", t.version);
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
        inj.call(&[sites::Fetch::Depth(depth)], 0, false, Default::default(), &mut seq);
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

/// An `iter` report's result takes the place of the iterable it was given (the runtime may
/// hand back a stand-in for `GET_ITER`), and the rest of the stack is as it was.
#[test]
fn an_iter_report_result_replaces_the_iterable() {
    for t in tables::all() {
        let ops = ops::for_table(t);
        let inj = Injector { table: t, ops, facts: Facts::for_table(t).unwrap(), on_name: 0, report_name: 1 };
        let mut seq = Vec::new();
        inj.call(&[sites::Fetch::Depth(1)], 0, true, Default::default(), &mut seq);
        let (result, callable, null, site) = (-3, -1, -9, -2);
        let mut stack: Vec<i32> = (0..5).collect();
        for instr in &seq {
            let name = t.op(instr.op).unwrap().name;
            let top = stack.len() - 1;
            match name {
                "LOAD_GLOBAL" => {
                    stack.push(callable);
                    if name_shift(t, "LOAD_GLOBAL") == 1 && instr.arg & 1 == 1 {
                        stack.push(null);
                    }
                }
                "LOAD_CONST" => stack.push(site),
                "COPY" => stack.push(stack[stack.len() - instr.arg as usize]),
                "DUP_TOP" => stack.push(stack[top]),
                "PRECALL" => {}
                "CALL" | "CALL_FUNCTION" => {
                    let args = stack.split_off(stack.len() - instr.arg as usize);
                    assert_eq!(args, vec![4, site], "{:?}", t.version);
                    while matches!(stack.last(), Some(&v) if v == callable || v == null) {
                        stack.pop();
                    }
                    stack.push(result);
                }
                "ROT_N" => {
                    let v = stack.pop().unwrap();
                    stack.insert(stack.len() + 1 - instr.arg as usize, v);
                }
                "SWAP" => stack.swap(top, top + 1 - instr.arg as usize),
                "ROT_TWO" => stack.swap(top, top - 1),
                "POP_TOP" => {
                    stack.pop();
                }
                other => panic!("unexpected {other} in {:?}", t.version),
            }
        }
        assert_eq!(stack, vec![0, 1, 2, 3, result], "{:?}", t.version);
    }
}

fn name_shift(table: &crate::tables::OpTable, name: &str) -> u32 {
    match table.by_name(name).map(|o| o.arg) {
        Some(crate::tables::ArgKind::Name { shift }) => shift as u32,
        _ => 0,
    }
}

/// The guards (`LOAD_GLOBAL __frontrun_on__`) of rewritten code whose `co_names` had `names`.
fn guards(code: &Code, names: usize) -> Vec<usize> {
    let lg = op(code.table, "LOAD_GLOBAL");
    let shift = name_shift(code.table, "LOAD_GLOBAL");
    let targets = code.label_targets();
    // Not the start of out-of-line reports (3.14+): its jump goes to the next instruction.
    let starts_reports =
        |i: usize| code.instrs.get(i + 1).and_then(|j| j.target).and_then(|l| targets[l.0 as usize]) == Some(i + 2);
    (0..code.instrs.len())
        .filter(|&i| code.instrs[i].op == lg && code.instrs[i].arg >> shift == names as u32 && !starts_reports(i))
        .collect()
}

/// `(op, arg)` of the instructions not marked injected: the original code, in order.
fn uninjected(rw: &Rewritten) -> Vec<(u8, u32)> {
    rw.code.instrs.iter().zip(&rw.injected).filter(|(_, inj)| !**inj).map(|(i, _)| (i.op, i.arg)).collect()
}

/// `code` (which must pass the stack check) rewritten under `inp`, with what every layout test
/// asks of the result: the original instructions all there, in order, and the output passing
/// the stack check (with the stack size it reports) and encoding.
fn rewrite_checked(code: Code, inp: &Input<'_>) -> Rewritten {
    let version = code.table.version;
    verify::check(&code).unwrap();
    let original: Vec<(u8, u32)> = code.instrs.iter().map(|i| (i.op, i.arg)).collect();
    let rw = rewrite(code, inp).unwrap().expect("sites");
    assert_eq!(uninjected(&rw), original, "{version:?}");
    assert_eq!(verify::check(&rw.code), Ok(rw.stacksize), "{version:?}");
    encode::encode(&rw.code).unwrap();
    rw
}

/// A method-form load of `co_names[name]` and the call of it with `argc` arguments, per version.
fn method_load(table: &'static crate::tables::OpTable, name: u32) -> Instr {
    match table.code("LOAD_METHOD") {
        Some(lm) => Instr::new(lm, name),
        None => Instr::new(op(table, "LOAD_ATTR"), name << 1 | 1),
    }
}

fn method_call(table: &'static crate::tables::OpTable, argc: u32) -> Vec<Instr> {
    if let Some(precall) = table.code("PRECALL") {
        vec![Instr::new(precall, argc), Instr::new(op(table, "CALL"), argc)]
    } else if let Some(call) = table.code("CALL") {
        vec![Instr::new(call, argc)]
    } else {
        vec![Instr::new(op(table, "CALL_METHOD"), argc)]
    }
}

fn attr_load(table: &'static crate::tables::OpTable, name: u32) -> Instr {
    Instr::new(op(table, "LOAD_ATTR"), name << name_shift(table, "LOAD_ATTR"))
}

#[test]
fn a_block_with_several_sites_gets_one_guard_and_an_untouched_copy() {
    let names = vec!["attr", "append"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        // The original copy has no stash (it is local to the region) and no reports.
        let rw = rewrite_checked(sample(t), &input(&names, &methods, Policy::Shared));
        assert_eq!(rw.sites.len(), 2, "{:?}", t.version);
        assert_eq!(guards(&rw.code, names.len()).len(), 1, "{:?}", t.version);
        // The region ends in RETURN_VALUE: both copies return, no JUMP_FORWARD.
        let jf = op(t, "JUMP_FORWARD");
        assert!(rw.code.instrs.iter().all(|i| i.op != jf), "{:?}", t.version);
        let returns = rw.code.instrs.iter().filter(|i| i.op == op(t, "RETURN_VALUE")).count();
        assert_eq!(returns, 2, "{:?}", t.version);
    }
}

/// `return o.p.q.append(a if c.s else b).x`: the receiver's stash crosses the conditional, so
/// it is kept in both copies of the regions it touches (and the stack agrees at every join).
#[test]
fn a_stash_across_blocks_is_in_both_copies() {
    let names = vec!["p", "q", "append", "x", "s"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        let ops = ops::for_table(t);
        let mut code = Code::new(t, 1);
        let line = |n: i32| crate::linetable::Position::line_only(n);
        if let Some(resume) = t.code("RESUME") {
            code.instrs.push(Instr::new(resume, 0).at(line(1)));
        }
        let (l_else, l_call) = (code.new_label(), code.new_label());
        let lf = |n: u32| Instr::new(op(t, "LOAD_FAST"), n).at(line(2));
        code.instrs.push(lf(0));
        code.instrs.push(attr_load(t, 0).at(line(2)));
        code.instrs.push(attr_load(t, 1).at(line(3)));
        code.instrs.push(method_load(t, 2).at(line(3)));
        code.instrs.push(lf(1).at(line(4)));
        code.instrs.push(attr_load(t, 4).at(line(4)));
        code.instrs.push(Instr::jump(ops.jump_if_false, l_else).at(line(4)));
        if let Some(nt) = ops.not_taken {
            code.instrs.push(Instr::new(nt, 0).at(line(4)));
        }
        code.instrs.push(lf(2));
        code.instrs.push(Instr::jump(ops.jump_forward, l_call).at(line(2)));
        code.instrs.push(Instr { label: Some(l_else), ..lf(3) });
        let mut call = method_call(t, 1);
        call[0].label = Some(l_call);
        code.instrs.extend(call.into_iter().map(|i| i.at(line(5))));
        code.instrs.push(attr_load(t, 3).at(line(5)));
        code.instrs.push(Instr::new(op(t, "RETURN_VALUE"), 0).at(line(5)));
        code.next_label = 2;
        let method = method_load(t, 2);

        let rw = rewrite_checked(code, &input(&names, &methods, Policy::Shared));
        let kinds: Vec<SiteKind> = rw.sites.iter().map(|s| s.kind).collect();
        use SiteKind::{AttrLoad, Call, Operand};
        // Before TO_BOOL (3.13) the branch itself tests the loaded value's truth: a site too.
        let branch_site = ops.truth.contains(&ops.jump_if_false);
        let expected: Vec<SiteKind> = [AttrLoad, AttrLoad, AttrLoad]
            .into_iter()
            .chain(branch_site.then_some(Operand))
            .chain([Call, AttrLoad])
            .collect();
        assert_eq!(kinds, expected, "{:?}", t.version);
        // Two regions (p/q/s before the branch, the call and .x after the join), one guard each.
        let g = guards(&rw.code, names.len());
        assert_eq!(g.len(), 2, "{:?}", t.version);
        assert_eq!(rw.code.instrs[g[0]].position, line(2), "guard at the region's first instruction");
        // The method-form load is preceded by the stash in the instrumented copy and in the
        // original one alike.
        let stash = ops.copy.unwrap_or_else(|| ops.dup_top.unwrap());
        let loads: Vec<usize> = (0..rw.code.instrs.len())
            .filter(|&i| (rw.code.instrs[i].op, rw.code.instrs[i].arg) == (method.op, method.arg))
            .collect();
        assert_eq!(loads.len(), 2, "{:?}", t.version);
        for &i in &loads {
            assert_eq!(rw.code.instrs[i - 1].op, stash, "{:?}", t.version);
            assert!(rw.injected[i - 1]);
        }
        // One in the instrumented copy, one original (3.14+: the copy comes after the code).
        assert_eq!(loads.iter().filter(|&&i| rw.injected[i]).count(), 1, "{:?}", t.version);
        // The first region jumps over its original copy (3.14+: back from after the code) to
        // the branch, from line 4.
        let closing = |i: &Instr| i.op == ops.jump_forward || Some(i.op) == ops.jump_back;
        let jf: Vec<&Instr> = rw.code.instrs.iter().filter(|i| closing(i)).collect();
        assert_eq!(jf.len(), 2, "{:?}: the region's and the program's own", t.version);
        assert!(jf.iter().any(|i| i.position == line(4)), "{:?}", t.version);
    }
}

/// The jump closing the copy of `region` (JUMP_FORWARD, or on 3.14+ the jump back from after
/// the code) and the index of its target.
fn closing_jump(rw: &Rewritten) -> (usize, usize) {
    let ops = ops::for_table(rw.code.table);
    let closing = |i: &Instr| i.op == ops.jump_forward || Some(i.op) == ops.jump_back;
    let at = (0..rw.code.instrs.len()).find(|&k| rw.injected[k] && closing(&rw.code.instrs[k])).expect("closing jump");
    let to = rw.code.label_targets()[rw.code.instrs[at].target.unwrap().0 as usize].unwrap();
    (at, to)
}

/// A copy that must jump back into the original does so right after its last site.
#[test]
fn the_site_free_rest_of_a_block_is_not_copied() {
    let names = vec!["a", "b"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        let ops = ops::for_table(t);
        let mut code = Code::new(t, 1);
        if let Some(resume) = t.code("RESUME") {
            code.instrs.push(Instr::new(resume, 0));
        }
        let lf = |n: u32| Instr::new(op(t, "LOAD_FAST"), n);
        let out = code.new_label();
        // o.b = o.a; return (x, x) if <constant> else ... (a constant's truth is no site)
        let store = Instr::new(op(t, "STORE_ATTR"), 1);
        code.instrs.extend([lf(0), attr_load(t, 0), lf(0), store, lf(1), lf(1), Instr::new(op(t, "BUILD_TUPLE"), 2)]);
        code.instrs.extend([Instr::new(ops.load_const, 0), Instr::jump(ops.jump_if_false, out)]);
        if let Some(nt) = ops.not_taken {
            code.instrs.push(Instr::new(nt, 0));
        }
        code.instrs.push(Instr::new(op(t, "RETURN_VALUE"), 0));
        code.instrs.push(Instr { label: Some(out), ..Instr::new(op(t, "RETURN_VALUE"), 0) });
        let rw = rewrite_checked(code, &input(&names, &methods, Policy::Shared));
        assert_eq!(guards(&rw.code, names.len()).len(), 1, "{:?}", t.version);
        let count = |name: &str| rw.code.instrs.iter().filter(|i| i.op == op(t, name)).count();
        assert_eq!((count("BUILD_TUPLE"), count("STORE_ATTR")), (1, 2), "{:?}", t.version);
        // The copy jumps to the original's first LOAD_FAST after the store.
        let (_, to) = closing_jump(&rw);
        assert_eq!((rw.code.instrs[to].op, rw.code.instrs[to].arg), (op(t, "LOAD_FAST"), 1));
        assert!(!rw.injected[to] && rw.code.instrs[to - 1].op == op(t, "STORE_ATTR"));
    }
}

/// 3.12 fires a second LINE event at a jump target right after an instruction that ran a
/// Python callee inline (a property's LOAD_ATTR here): the original copy gets a NOP there.
#[test]
fn no_new_jump_target_right_after_an_inlined_call_on_3_12() {
    let names = vec!["a", "b"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        let ops = ops::for_table(t);
        let mut code = Code::new(t, 1);
        if let Some(resume) = t.code("RESUME") {
            code.instrs.push(Instr::new(resume, 0));
        }
        let out = code.new_label();
        code.instrs.extend([Instr::new(op(t, "LOAD_FAST"), 0), attr_load(t, 0), attr_load(t, 1)]);
        code.instrs.push(Instr::jump(ops.jump_if_false, out));
        if let Some(nt) = ops.not_taken {
            code.instrs.push(Instr::new(nt, 0));
        }
        code.instrs.push(Instr::new(op(t, "LOAD_CONST"), 0));
        code.instrs.push(Instr::new(op(t, "RETURN_VALUE"), 0));
        code.instrs.push(Instr { label: Some(out), ..Instr::new(op(t, "LOAD_CONST"), 0) });
        code.instrs.push(Instr::new(op(t, "RETURN_VALUE"), 0));
        let rw = rewrite_checked(code, &input(&names, &methods, Policy::Shared));
        let (_, to) = closing_jump(&rw);
        assert_eq!(rw.code.instrs[to].op, ops.jump_if_false);
        let before = &rw.code.instrs[to - 1];
        if t.version == (3, 12) {
            assert!(before.op == ops.nop && rw.injected[to - 1]);
            assert_eq!(rw.code.instrs[to - 2].op, op(t, "LOAD_ATTR"));
        } else {
            assert!(before.op == op(t, "LOAD_ATTR") && !rw.injected[to - 1], "{:?}", t.version);
        }
    }
}

/// A block whose region would have to close where nothing may be placed (before a RESUME)
/// keeps one guard per site, like code rewritten with versioning off.
#[test]
fn unversionable_blocks_keep_per_site_guards() {
    let names = vec!["a", "b"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        let Some(resume) = t.code("RESUME") else { continue };
        let mut code = Code::new(t, 1);
        code.instrs.push(Instr::new(resume, 0));
        code.instrs.extend([Instr::new(op(t, "LOAD_FAST"), 0), attr_load(t, 0), attr_load(t, 1)]);
        let resumed = code.new_label();
        code.instrs.push(Instr { label: Some(resumed), ..Instr::new(resume, 1) });
        code.instrs.push(Instr::new(op(t, "RETURN_VALUE"), 0));
        for versioning in [true, false] {
            let inp = Input { versioning, ..input(&names, &methods, Policy::Shared) };
            let rw = rewrite_checked(code.clone(), &inp);
            assert_eq!(rw.sites.len(), 2);
            assert_eq!(guards(&rw.code, names.len()).len(), 2, "{:?}", t.version);
            assert_eq!(rw.code.instrs.len(), rw.injected.len());
            // Nothing is copied: every original instruction appears once.
            assert_eq!(rw.code.instrs.iter().filter(|i| i.op == op(t, "LOAD_ATTR")).count(), 2);
        }
    }
}

/// With versioning off the sample keeps a guard per report site and the stash everywhere.
#[test]
fn versioning_off_is_the_per_site_layout() {
    let names = vec!["attr", "append"];
    let methods = MethodTables::new(&[]);
    for t in tables::all() {
        let n = sample(t).instrs.len();
        let inp = Input { versioning: false, ..input(&names, &methods, Policy::Shared) };
        let rw = rewrite(sample(t), &inp).unwrap().unwrap();
        assert_eq!(guards(&rw.code, names.len()).len(), 2, "{:?}", t.version);
        assert_eq!(rw.injected.iter().filter(|i| !**i).count(), n);
        verify::check(&rw.code).unwrap();
    }
}

/// `super().append(x)` on 3.12+ (`LOAD_SUPER_ATTR`, method form): the receiver's copy goes
/// below `super` and the class, so the call is reported on `self` as any method call is.
#[test]
fn a_super_method_call_stashes_self_below_the_super_and_class() {
    let names = vec!["super", "append"];
    let methods = MethodTables::new(&[]);
    for t in tables::all().iter().filter(|t| t.code("LOAD_SUPER_ATTR").is_some()) {
        let mut code = Code::new(t, 2);
        code.instrs.push(Instr::new(op(t, "RESUME"), 0));
        code.instrs.push(Instr::new(op(t, "LOAD_GLOBAL"), 0 << name_shift(t, "LOAD_GLOBAL")));
        code.instrs.push(Instr::new(op(t, "LOAD_FAST"), 1)); // stands in for LOAD_DEREF __class__
        code.instrs.push(Instr::new(op(t, "LOAD_FAST"), 0));
        let load = code.instrs.len();
        code.instrs.push(Instr::new(op(t, "LOAD_SUPER_ATTR"), 1 << 2 | 1));
        code.instrs.push(Instr::new(op(t, "LOAD_FAST"), 1));
        code.instrs.extend(method_call(t, 1));
        code.instrs.push(Instr::new(op(t, "RETURN_VALUE"), 0));
        let rw = rewrite_checked(code, &input(&names, &methods, Policy::Shared));
        let kinds: Vec<SiteKind> = rw.sites.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, vec![SiteKind::GlobalLoad, SiteKind::Call], "{:?}", t.version);
        let ops = ops::for_table(t);
        let (copy, swap) = (ops.copy.unwrap(), ops.swap.unwrap());
        let super_load = |i: &usize| rw.code.instrs[*i].op == op(t, "LOAD_SUPER_ATTR");
        let at: Vec<usize> = (0..rw.code.instrs.len()).filter(super_load).collect();
        assert!(!at.is_empty() && at.iter().all(|&i| i >= load), "{:?}", t.version);
        // In the instrumented copy: COPY 1; SWAP 4; SWAP 3; SWAP 2 right before the load.
        let before = |i: usize| rw.code.instrs[i - 4..i].iter().map(|x| (x.op, x.arg)).collect::<Vec<_>>();
        assert!(at.iter().any(|&i| before(i) == vec![(copy, 1), (swap, 4), (swap, 3), (swap, 2)]), "{:?}", t.version);
    }
}
