//! Opcode numbers the rewriter needs, looked up by name in each table once.

use std::sync::OnceLock;

use crate::tables::{self, JumpDir, OpTable};

/// `None` where the interpreter has no such op.
#[derive(Debug)]
pub struct Ops {
    pub load_attr: Option<u8>,
    pub load_method: Option<u8>,
    pub load_super_attr: Option<u8>,
    pub store_attr: Option<u8>,
    pub delete_attr: Option<u8>,
    pub load_global: Option<u8>,
    pub store_global: Option<u8>,
    pub delete_global: Option<u8>,
    pub load_name: Option<u8>,
    pub store_name: Option<u8>,
    pub delete_name: Option<u8>,
    pub load_deref: Option<u8>,
    pub store_deref: Option<u8>,
    pub delete_deref: Option<u8>,
    pub binary_subscr: Option<u8>,
    pub store_subscr: Option<u8>,
    pub delete_subscr: Option<u8>,
    pub binary_slice: Option<u8>,
    pub store_slice: Option<u8>,
    pub binary_op: Option<u8>,
    pub call: Option<u8>,
    pub precall: Option<u8>,
    pub call_kw: Option<u8>,
    pub call_function: Option<u8>,
    pub call_function_kw: Option<u8>,
    pub call_function_ex: Option<u8>,
    pub call_method: Option<u8>,
    pub kw_names: Option<u8>,
    pub setup_with: Option<u8>,
    pub before_with: Option<u8>,
    pub before_async_with: Option<u8>,
    pub load_special: Option<u8>,
    pub for_iter: Option<u8>,
    pub get_iter: Option<u8>,
    /// `yield from`'s iterable (3.10–3.14; 3.15 gives GET_ITER an argument instead).
    pub get_yield_from_iter: Option<u8>,
    pub import_from: Option<u8>,
    /// A class pattern (`case Point(x=0)`): reads the subject's attributes in C.
    pub match_class: Option<u8>,
    pub contains_op: Option<u8>,
    pub end_for: Option<u8>,
    pub resume: Option<u8>,
    pub not_taken: Option<u8>,
    pub get_awaitable: Option<u8>,
    pub yield_value: Option<u8>,
    pub pop_top: u8,
    pub load_const: u8,
    pub copy: Option<u8>,
    pub swap: Option<u8>,
    pub dup_top: Option<u8>,
    pub rot_two: Option<u8>,
    pub rot_three: Option<u8>,
    pub rot_four: Option<u8>,
    pub rot_n: Option<u8>,
    pub load_fast: u8,
    pub load_closure: Option<u8>,
    pub load_fast_borrow: Option<u8>,
    pub load_fast_borrow_pair: Option<u8>,
    pub load_fast_load_fast: Option<u8>,
    /// The guard's conditional jump: forward (or 3.10 absolute) jump if false.
    pub jump_if_false: u8,
    /// The end of an instrumented region copy: jump over the original.
    pub jump_forward: u8,
    /// Out-of-line guards (`Facts::guards_out_of_line`): the guard's forward jump if true, and
    /// the way back.
    pub jump_if_true: Option<u8>,
    pub jump_back: Option<u8>,
    pub nop: u8,
    /// Ops after which nothing may be inserted (a fixed-offset skip or a pairing follows).
    pub no_insert_after: Vec<u8>,
    /// 3.10 INPLACE_* ops, with the operator each one applies.
    pub inplace: Vec<(u8, &'static str)>,
    /// Ops that test the truth of their top value (`if c:`, `not c`, `while c`, `c and d`):
    /// TO_BOOL where the table has it (the conditional jumps after it only see bools), else
    /// the conditional jumps on truth and UNARY_NOT.
    pub truth: Vec<u8>,
    /// Ops that read the contents of their top value: unpacking, `*`/`**` expansion into a
    /// display or call, a mapping or sequence pattern's subject, conversion and formatting in
    /// f-strings.
    pub reads_top: Vec<u8>,
    /// Ops that read both of their top two values: comparisons and 3.10's binary operators
    /// (BINARY_OP is told apart by its argument).
    pub reads_pair: Vec<u8>,
    /// 3.10-3.12 FORMAT_VALUE: the value is under the format spec when the argument has 4.
    pub format_value: Option<u8>,
    /// 3.13+ FORMAT_WITH_SPEC: the value is under the spec.
    pub format_with_spec: Option<u8>,
    /// 3.13+ FORMAT_SIMPLE and CONVERT_VALUE: an f-string's value on top (among `reads_top`).
    pub formats_top: [Option<u8>; 2],
    /// Ops whose pushed value is never a mutable container (a constant, a bool, a str, an
    /// int): an operand they just pushed need not be reported.
    pub pushes_scalar: [bool; 256],
    /// Ops that push without popping (BUILD_* only with argument 0: see `is_pure_push`).
    pure_push: [bool; 256],
    zero_arg_builds: Vec<u8>,
    /// Ops that pop exactly their top item and push nothing (on every edge).
    pub pop_one: [bool; 256],
}

fn build(t: &OpTable) -> Ops {
    let c = |name: &str| t.code(name);
    let jump_if_false = ["POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_IF_FALSE"]
        .iter()
        .filter_map(|n| t.by_name(n))
        .find(|op| op.jump != Some(JumpDir::Backward))
        .map(|op| op.code)
        .expect("every table has a forward conditional jump");
    // LOAD_SPECIAL (3.14+): the `__enter__` call must follow it directly, or an interrupt left
    // pending by `__enter__` is raised before the `with` body's handler covers it.
    // The opcodes of those of `list` the table has.
    let names = |list: &[&str]| -> Vec<u8> { list.iter().filter_map(|n| c(n)).collect() };
    // (Code may follow a NOT_TAKEN, 3.14+: only the jump and its NOT_TAKEN must stay adjacent,
    // and `find_insertable` never inserts before a NOT_TAKEN.)
    let no_insert_after = names(&["PRECALL", "KW_NAMES", "YIELD_VALUE", "SEND", "CLEANUP_THROW", "LOAD_SPECIAL"]);
    let inplace = [
        ("INPLACE_ADD", "+="),
        ("INPLACE_SUBTRACT", "-="),
        ("INPLACE_MULTIPLY", "*="),
        ("INPLACE_MATRIX_MULTIPLY", "@="),
        ("INPLACE_TRUE_DIVIDE", "/="),
        ("INPLACE_FLOOR_DIVIDE", "//="),
        ("INPLACE_MODULO", "%="),
        ("INPLACE_POWER", "**="),
        ("INPLACE_LSHIFT", "<<="),
        ("INPLACE_RSHIFT", ">>="),
        ("INPLACE_AND", "&="),
        ("INPLACE_XOR", "^="),
        ("INPLACE_OR", "|="),
    ]
    .iter()
    .filter_map(|(n, sym)| c(n).map(|code| (code, *sym)))
    .collect();
    let truth = if c("TO_BOOL").is_some() {
        names(&["TO_BOOL"])
    } else {
        names(&[
            "POP_JUMP_IF_FALSE",
            "POP_JUMP_IF_TRUE",
            "POP_JUMP_FORWARD_IF_FALSE",
            "POP_JUMP_FORWARD_IF_TRUE",
            "POP_JUMP_BACKWARD_IF_FALSE",
            "POP_JUMP_BACKWARD_IF_TRUE",
            "JUMP_IF_FALSE_OR_POP",
            "JUMP_IF_TRUE_OR_POP",
            "UNARY_NOT",
        ])
    };
    let reads_top = names(&[
        "UNPACK_SEQUENCE",
        "UNPACK_EX",
        "LIST_EXTEND",
        "SET_UPDATE",
        "DICT_UPDATE",
        "DICT_MERGE",
        // A mapping or sequence pattern reads its subject (its keys, length, items) from here;
        // the GET_LEN that follows may come right after a NOT_TAKEN (3.14+), where nothing is
        // inserted.
        "MATCH_MAPPING",
        "MATCH_SEQUENCE",
        "CONVERT_VALUE",
        "FORMAT_SIMPLE",
    ]);
    let reads_pair = names(&[
        "COMPARE_OP",
        "BINARY_ADD",
        "BINARY_SUBTRACT",
        "BINARY_MULTIPLY",
        "BINARY_MATRIX_MULTIPLY",
        "BINARY_TRUE_DIVIDE",
        "BINARY_FLOOR_DIVIDE",
        "BINARY_MODULO",
        "BINARY_POWER",
        "BINARY_LSHIFT",
        "BINARY_RSHIFT",
        "BINARY_AND",
        "BINARY_XOR",
        "BINARY_OR",
    ]);
    let mut pushes_scalar = [false; 256];
    for op in names(&[
        "LOAD_CONST",
        "LOAD_SMALL_INT",
        "COMPARE_OP",
        "IS_OP",
        "CONTAINS_OP",
        "UNARY_NOT",
        "TO_BOOL",
        "GET_LEN",
        "FORMAT_VALUE",
        "CONVERT_VALUE",
        "FORMAT_SIMPLE",
        "FORMAT_WITH_SPEC",
        "BUILD_STRING",
    ]) {
        pushes_scalar[op as usize] = true;
    }
    let mut pure_push = [false; 256];
    let mut pop_one = [false; 256];
    let consuming_loads = [
        "LOAD_ATTR",
        "LOAD_METHOD",
        "LOAD_SUPER_ATTR",
        "LOAD_SPECIAL",
        "LOAD_FROM_DICT_OR_GLOBALS",
        "LOAD_FROM_DICT_OR_DEREF",
    ];
    let pure = [
        "PUSH_NULL",
        "COPY",
        "DUP_TOP",
        "DUP_TOP_TWO",
        "NOP",
        "NOT_TAKEN",
        "KW_NAMES",
        "RESUME",
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "JUMP_ABSOLUTE",
        "MAKE_CELL",
        "COPY_FREE_VARS",
        "GET_LEN",
    ];
    let pops_one_only = ["POP_TOP", "JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP"];
    for op in t.ops.iter().flatten() {
        let name = op.name;
        pure_push[op.code as usize] =
            (name.starts_with("LOAD_") && !consuming_loads.contains(&name)) || pure.contains(&name);
        pop_one[op.code as usize] =
            pops_one_only.contains(&name) || (name.starts_with("POP_JUMP_") && op.stack_effect(0, false) == Some(-1));
    }
    let zero_arg_builds = names(&["BUILD_LIST", "BUILD_TUPLE", "BUILD_SET", "BUILD_MAP", "BUILD_STRING"]);
    Ops {
        pure_push,
        zero_arg_builds,
        pop_one,
        load_attr: c("LOAD_ATTR"),
        load_method: c("LOAD_METHOD"),
        load_super_attr: c("LOAD_SUPER_ATTR"),
        store_attr: c("STORE_ATTR"),
        delete_attr: c("DELETE_ATTR"),
        load_global: c("LOAD_GLOBAL"),
        store_global: c("STORE_GLOBAL"),
        delete_global: c("DELETE_GLOBAL"),
        load_name: c("LOAD_NAME"),
        store_name: c("STORE_NAME"),
        delete_name: c("DELETE_NAME"),
        load_deref: c("LOAD_DEREF"),
        store_deref: c("STORE_DEREF"),
        delete_deref: c("DELETE_DEREF"),
        binary_subscr: c("BINARY_SUBSCR"),
        store_subscr: c("STORE_SUBSCR"),
        delete_subscr: c("DELETE_SUBSCR"),
        binary_slice: c("BINARY_SLICE"),
        store_slice: c("STORE_SLICE"),
        binary_op: c("BINARY_OP"),
        call: c("CALL"),
        precall: c("PRECALL"),
        call_kw: c("CALL_KW"),
        call_function: c("CALL_FUNCTION"),
        call_function_kw: c("CALL_FUNCTION_KW"),
        call_function_ex: c("CALL_FUNCTION_EX"),
        call_method: c("CALL_METHOD"),
        kw_names: c("KW_NAMES"),
        setup_with: c("SETUP_WITH"),
        before_with: c("BEFORE_WITH"),
        before_async_with: c("BEFORE_ASYNC_WITH"),
        load_special: c("LOAD_SPECIAL"),
        for_iter: c("FOR_ITER"),
        get_iter: c("GET_ITER"),
        get_yield_from_iter: c("GET_YIELD_FROM_ITER"),
        import_from: c("IMPORT_FROM"),
        match_class: c("MATCH_CLASS"),
        contains_op: c("CONTAINS_OP"),
        end_for: c("END_FOR"),
        resume: c("RESUME"),
        not_taken: c("NOT_TAKEN"),
        get_awaitable: c("GET_AWAITABLE"),
        yield_value: c("YIELD_VALUE"),
        pop_top: c("POP_TOP").expect("POP_TOP"),
        load_const: c("LOAD_CONST").expect("LOAD_CONST"),
        copy: c("COPY"),
        swap: c("SWAP"),
        dup_top: c("DUP_TOP"),
        rot_two: c("ROT_TWO"),
        rot_three: c("ROT_THREE"),
        rot_four: c("ROT_FOUR"),
        rot_n: c("ROT_N"),
        load_fast: c("LOAD_FAST").expect("LOAD_FAST"),
        load_closure: c("LOAD_CLOSURE"),
        load_fast_borrow: c("LOAD_FAST_BORROW"),
        load_fast_borrow_pair: c("LOAD_FAST_BORROW_LOAD_FAST_BORROW"),
        load_fast_load_fast: c("LOAD_FAST_LOAD_FAST"),
        jump_if_false,
        jump_forward: c("JUMP_FORWARD").expect("JUMP_FORWARD"),
        jump_if_true: t.by_name("POP_JUMP_IF_TRUE").filter(|op| op.jump == Some(JumpDir::Forward)).map(|op| op.code),
        jump_back: c("JUMP_BACKWARD_NO_INTERRUPT"),
        nop: c("NOP").expect("NOP"),
        no_insert_after,
        inplace,
        truth,
        reads_top,
        reads_pair,
        format_value: c("FORMAT_VALUE"),
        format_with_spec: c("FORMAT_WITH_SPEC"),
        formats_top: [c("FORMAT_SIMPLE"), c("CONVERT_VALUE")],
        pushes_scalar,
    }
}

/// The ops of `table` (built once per embedded table).
pub fn for_table(table: &'static OpTable) -> &'static Ops {
    let index = tables::all().iter().position(|t| std::ptr::eq(t, table)).expect("an embedded table");
    &all()[index]
}

/// The ops of every embedded table, in `tables::all()` order.
pub fn all() -> &'static [Ops] {
    static ALL: OnceLock<Vec<Ops>> = OnceLock::new();
    ALL.get_or_init(|| tables::all().iter().map(build).collect())
}

impl Ops {
    /// Whether the instruction only pushes (reads nothing it pops).
    pub fn is_pure_push(&self, op: u8, arg: u32) -> bool {
        self.pure_push[op as usize] || (arg == 0 && self.zero_arg_builds.contains(&op))
    }
}
