//! Per-version opcode tables, generated from each interpreter by `opcode_tables/generate.py`
//! and embedded at build time by `build.rs`. Everything version-specific that a table can
//! express lives in these tables; code elsewhere asks them instead of comparing versions.

/// How an instruction's argument is interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// No argument (the byte is ignored and written back as it was).
    None,
    /// An argument with no table behind it (counts, flags, ...).
    Other,
    /// A jump offset; direction in `OpInfo::jump`.
    Jump,
    /// Index into `co_consts`.
    Const,
    /// Index into `co_names`, after shifting right by `shift` (low bits are flags).
    Name { shift: u8 },
    /// Index of one local variable.
    Local,
    /// Two local indexes packed as `a << 4 | b` (3.13+ superinstructions).
    LocalPair,
    /// Index of a cell or free variable (see `DerefIndex`).
    Free,
    /// Index into `dis.cmp_op`, after shifting right by `shift`.
    Compare { shift: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JumpDir {
    /// Target = end of this instruction's caches + arg code units.
    Forward,
    /// Target = end of this instruction's caches - arg code units.
    Backward,
    /// Target = arg code units from the start (3.10 only).
    Absolute,
}

/// Control flow after the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Falls through to the next instruction.
    Next,
    /// May jump or fall through.
    Branch,
    /// Always jumps.
    Goto,
    /// Never falls through and never jumps (return, raise).
    End,
    /// 3.10 block setup: falls through; the "jump" target is an exception handler.
    Setup,
}

/// `dis.stack_effect` as a function of the argument (see the table file header).
#[derive(Clone, Copy, Debug)]
pub enum StackEffect {
    Const(i32),
    Bits { c: i32, w: [i32; 8], high: i32 },
    Table(&'static [Option<i32>]),
    Invalid,
}

impl StackEffect {
    #[inline]
    pub fn eval(&self, arg: u32) -> Option<i32> {
        match *self {
            StackEffect::Const(c) => Some(c),
            StackEffect::Bits { c, w, high } => {
                // Branch-free: every flow analysis asks this once per instruction.
                let low = arg & 0xff;
                let bits: i32 = (0..8).map(|i| w[i] & -((low >> i & 1) as i32)).sum();
                Some(c + bits + high * (arg >> 8) as i32)
            }
            StackEffect::Table(values) => values.get(arg as usize).copied().flatten(),
            StackEffect::Invalid => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    pub name: &'static str,
    pub code: u8,
    /// Inline CACHE code units that follow the instruction (3.11+).
    pub caches: u8,
    pub arg: ArgKind,
    pub jump: Option<JumpDir>,
    pub flow: Flow,
    /// Net stack effect when not jumping, and when jumping.
    pub stack: [StackEffect; 2],
}

impl OpInfo {
    #[inline]
    pub fn stack_effect(&self, arg: u32, jump: bool) -> Option<i32> {
        self.stack[jump as usize].eval(arg)
    }
    pub fn has_arg(&self) -> bool {
        self.arg != ArgKind::None
    }
    /// Code units taken by the instruction itself and its caches (no EXTENDED_ARG).
    pub fn units(&self) -> usize {
        1 + self.caches as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocationFormat {
    /// 3.10 `co_linetable`: (byte delta, line delta) pairs.
    LineTable310,
    /// 3.11+ PEP 657 location table.
    Pep657,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DerefIndex {
    /// 3.10: index into `co_cellvars + co_freevars`.
    CellsThenFrees,
    /// 3.11+: index into the "locals plus" array (locals, cells, frees).
    LocalsPlus,
}

#[derive(Debug)]
pub struct OpTable {
    pub version: (u8, u8),
    /// `importlib.util.MAGIC_NUMBER` as a little-endian u16.
    pub magic: u16,
    pub marshal_version: u8,
    pub extended_arg: u8,
    pub have_argument: u8,
    /// `sys.implementation.cache_tag`, shared by the free-threaded build.
    pub cache_tag: &'static str,
    pub locations: LocationFormat,
    /// Whether exception handling uses `co_exceptiontable` (3.11+) rather than a block stack.
    pub exception_table: bool,
    pub deref: DerefIndex,
    pub ops: [Option<OpInfo>; 256],
}

impl OpTable {
    pub fn op(&self, code: u8) -> Option<&OpInfo> {
        self.ops[code as usize].as_ref()
    }
    pub fn by_name(&self, name: &str) -> Option<&OpInfo> {
        self.ops.iter().flatten().find(|op| op.name == name)
    }
    /// The opcode number of `name`, for ops every table of interest has.
    pub fn code(&self, name: &str) -> Option<u8> {
        self.by_name(name).map(|op| op.code)
    }
}

include!(concat!(env!("OUT_DIR"), "/tables_gen.rs"));

/// Every embedded table, oldest version first.
pub fn all() -> &'static [OpTable] {
    TABLES
}

pub fn for_version(major: u8, minor: u8) -> Option<&'static OpTable> {
    TABLES.iter().find(|t| t.version == (major, minor))
}

pub fn for_magic(magic: u16) -> Option<&'static OpTable> {
    TABLES.iter().find(|t| t.magic == magic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_the_basics() {
        assert!(all().len() >= 4);
        for t in all() {
            let ext = t.op(t.extended_arg).expect("EXTENDED_ARG present");
            assert_eq!(ext.name, "EXTENDED_ARG");
            assert!(t.by_name("LOAD_CONST").is_some_and(|op| op.arg == ArgKind::Const));
            assert!(t.by_name("RETURN_VALUE").is_some_and(|op| op.flow == Flow::End));
            assert_eq!(for_magic(t.magic).unwrap().version, t.version);
        }
    }

    #[test]
    fn stack_effects_follow_their_formula() {
        let t = for_version(3, 12).unwrap();
        let build_tuple = t.by_name("BUILD_TUPLE").unwrap();
        assert_eq!(build_tuple.stack_effect(3, false), Some(-2));
        assert_eq!(build_tuple.stack_effect(300, false), Some(-299));
        let unpack_ex = t.by_name("UNPACK_EX").unwrap();
        assert_eq!(unpack_ex.stack_effect(2 | 3 << 8, false), Some(5));
        let slice = t.by_name("BUILD_SLICE").unwrap();
        assert_eq!(slice.stack_effect(3, false), Some(-2));
        let load_attr = t.by_name("LOAD_ATTR").unwrap();
        assert_eq!(load_attr.arg, ArgKind::Name { shift: 1 });
        assert_eq!(load_attr.stack_effect(5, false), Some(1));
    }

    #[test]
    fn jump_directions_per_version() {
        let t310 = for_version(3, 10).unwrap();
        assert_eq!(t310.by_name("JUMP_ABSOLUTE").unwrap().jump, Some(JumpDir::Absolute));
        assert_eq!(t310.by_name("SETUP_FINALLY").unwrap().flow, Flow::Setup);
        let t313 = for_version(3, 13).unwrap();
        assert_eq!(t313.by_name("JUMP_BACKWARD").unwrap().jump, Some(JumpDir::Backward));
        assert_eq!(t313.by_name("LOAD_FAST_LOAD_FAST").unwrap().arg, ArgKind::LocalPair);
    }
}
