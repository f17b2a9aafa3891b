//! CPython `marshal` data and `.pyc` files for 3.10 – 3.15, without an interpreter.
//!
//! [`loads`] turns marshal bytes into an [`Obj`] tree that keeps everything needed to write the
//! very same bytes back with [`dumps`]: the exact type code of every value (short/long string and
//! tuple forms, interned or not, text or binary floats), the `FLAG_REF` bit of every value and
//! every back-reference (`TYPE_REF`). [`read_pyc`] / [`write_pyc`] add the 16-byte pyc header.
//!
//! Back-references. CPython numbers the objects that carry `FLAG_REF` in the order their type
//! byte appears and later refers to them by that number. Here each such object carries a
//! [`RefId`] in [`Obj::flag`], and a [`Value::Ref`] names the [`RefId`] it points to and also
//! holds a copy of the target, so reading never needs a side table ([`Obj::resolve`]).
//! [`dumps`] renumbers: an unchanged tree gets its original numbers back, so its bytes are
//! identical; a tree whose shared objects were replaced or removed still writes valid marshal,
//! because a reference whose target was not written yet is written as the target itself.
//!
//! Writing objects built by hand: [`Obj`] constructors ([`Obj::interned`], [`Obj::int`], ...)
//! pick the type codes CPython would; objects without a [`RefId`] are simply not shared.
//! [`dumps_without_refs`] writes any tree with no sharing at all.
//!
//! Untrusted input: every length is checked against the remaining input before allocating,
//! nesting is limited to CPython's 2000, and reading and writing use explicit stacks, so deep
//! input costs heap, not call stack.
//!
//! Editing: assign a new [`Obj`] to a field (e.g. `code.exceptiontable = Obj::bytes(..)`); that is
//! always safe. Mutating an object that carries a [`RefId`] in place also changes every reference
//! to it that is written as a `TYPE_REF`, exactly like mutating a shared Python object.

mod obj;
mod pyc;
mod read;
mod repr;
mod write;

#[cfg(test)]
mod tests;

pub use obj::{Code, CodeExtra, Obj, Ref, RefId, StrKind, Value};
pub use pyc::{read_pyc, write_pyc, Pyc, PycSource};
pub use read::{loads, loads_prefix};
pub use write::{dumps, dumps_without_refs};

use std::fmt;

/// CPython's `MAX_MARSHAL_STACK_DEPTH` (non-Windows): deeper nesting is rejected by both the
/// reader and the writer, which also bounds our recursion.
pub const MAX_DEPTH: u32 = 2000;

/// A CPython minor release, e.g. `PyVersion::new(3, 12)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PyVersion {
    pub major: u8,
    pub minor: u8,
}

impl PyVersion {
    pub const fn new(major: u8, minor: u8) -> Self {
        PyVersion { major, minor }
    }

    /// The `marshal.version` this release writes: 4 up to 3.13, 5 (slices) in 3.14, 6
    /// (frozendict) in 3.15. `None` for releases this module does not support.
    pub const fn marshal_version(self) -> Option<u8> {
        match (self.major, self.minor) {
            (3, 10..=13) => Some(4),
            (3, 14) => Some(5),
            (3, 15) => Some(6),
            _ => None,
        }
    }

    /// Which code-object layout the release's marshal format uses.
    pub const fn code_layout(self) -> CodeLayout {
        if self.major == 3 && self.minor == 10 {
            CodeLayout::Py310
        } else {
            CodeLayout::Py311
        }
    }
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Field layout of a marshalled code object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeLayout {
    /// 3.10: nlocals, varnames/freevars/cellvars, no qualname or exception table.
    Py310,
    /// 3.11 and later: localsplusnames/localspluskinds, qualname, exception table.
    Py311,
}

/// The (pyc magic number, release) pairs known here; the single place to change when the
/// lookup moves to the generated opcode tables.
const MAGIC_TABLE: &[(u16, PyVersion)] = &[
    (3439, PyVersion::new(3, 10)),
    (3495, PyVersion::new(3, 11)),
    (3531, PyVersion::new(3, 12)),
    (3571, PyVersion::new(3, 13)),
    (3627, PyVersion::new(3, 14)),
    (3666, PyVersion::new(3, 15)),
];

/// The release whose pyc files start with this magic number (the u16 before `\r\n`).
pub fn version_for_magic(magic: u16) -> Option<PyVersion> {
    MAGIC_TABLE.iter().find(|(m, _)| *m == magic).map(|(_, v)| *v)
}

/// The magic number the release writes into its pyc files.
pub fn magic_for_version(version: PyVersion) -> Option<u16> {
    MAGIC_TABLE.iter().find(|(_, v)| *v == version).map(|(m, _)| *m)
}

/// Why marshal data or a pyc file could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarshalError {
    /// Byte offset into the input where the problem was found (for write errors: into the
    /// output written so far).
    pub offset: usize,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input ended while `what` was being read.
    Truncated {
        what: &'static str,
    },
    UnknownTypeCode(u8),
    /// A type code the given marshal version does not have (e.g. a slice before 3.14).
    TypeNotInVersion {
        code: u8,
        marshal_version: u8,
    },
    /// A declared size that is negative or above 2**31-1.
    SizeOutOfRange {
        what: &'static str,
        size: i64,
    },
    /// A declared size that cannot fit in what is left of the input (checked before allocating).
    SizeExceedsInput {
        what: &'static str,
        size: u64,
        remaining: usize,
    },
    /// `TYPE_REF` to an index that was never registered.
    InvalidRef(i64),
    /// `TYPE_REF` to a frozenset/code/slice/frozendict that is still being read.
    RefToIncomplete(u32),
    LongDigitOutOfRange(u16),
    UnnormalizedLong,
    BadFloatText,
    /// A `u`/`t` string that is not UTF-8 (lone surrogates are allowed, as `surrogatepass`).
    InvalidUtf8,
    /// `TYPE_NULL` where an object is required (only a dict terminator may be NULL).
    NullObject {
        context: &'static str,
    },
    TooDeep,
    CodeFieldType {
        field: &'static str,
        expected: &'static str,
    },
    UnsupportedVersion(PyVersion),
    BadMagic {
        magic: u16,
        tail: [u8; 2],
    },
    BadPycFlags(u32),
    /// Write side: a value this marshal version cannot hold.
    NotInVersion {
        what: &'static str,
        version: PyVersion,
    },
    /// Write side: a code object whose layout does not belong to the target release.
    CodeLayoutMismatch {
        layout: CodeLayout,
        version: PyVersion,
    },
    /// Write side: a size or count above 2**31-1.
    TooLarge {
        what: &'static str,
    },
    /// Write side: a reference whose target was neither written before nor carried along.
    DanglingRef(RefId),
    /// Write side: a value that cannot be stored as it is (e.g. a malformed long).
    InvalidValue {
        what: &'static str,
    },
}

impl MarshalError {
    pub(crate) fn new(offset: usize, kind: ErrorKind) -> Self {
        MarshalError { offset, kind }
    }
}

impl fmt::Display for MarshalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
        write!(f, "bad marshal data at offset {}: ", self.offset)?;
        match &self.kind {
            Truncated { what } => write!(f, "input ends inside {what}"),
            UnknownTypeCode(c) => write!(f, "unknown type code {:#04x} ({:?})", c, *c as char),
            TypeNotInVersion { code, marshal_version } => {
                write!(f, "type code {:?} does not exist in marshal version {marshal_version}", *code as char)
            }
            SizeOutOfRange { what, size } => write!(f, "{what} size {size} out of range"),
            SizeExceedsInput { what, size, remaining } => {
                write!(f, "{what} declares {size} entries/bytes but only {remaining} bytes remain")
            }
            InvalidRef(n) => write!(f, "invalid reference {n}"),
            RefToIncomplete(n) => write!(f, "reference {n} to an object still being read"),
            LongDigitOutOfRange(d) => write!(f, "long digit {d:#x} out of range"),
            UnnormalizedLong => write!(f, "unnormalized long (top digit is zero)"),
            BadFloatText => write!(f, "float text is not a number"),
            InvalidUtf8 => write!(f, "string is not UTF-8"),
            NullObject { context } => write!(f, "NULL object in {context}"),
            TooDeep => write!(f, "nesting deeper than {MAX_DEPTH}"),
            CodeFieldType { field, expected } => {
                write!(f, "code object field {field} must be {expected}")
            }
            UnsupportedVersion(v) => write!(f, "Python {v} is not supported"),
            BadMagic { magic, tail } => {
                write!(f, "unknown pyc magic number {magic} (tail {tail:02x?})")
            }
            BadPycFlags(x) => write!(f, "invalid pyc flags {x:#x}"),
            NotInVersion { what, version } => {
                write!(f, "{what} cannot be marshalled for Python {version}")
            }
            CodeLayoutMismatch { layout, version } => {
                write!(f, "{layout:?} code object cannot be written for Python {version}")
            }
            TooLarge { what } => write!(f, "{what} too large for marshal"),
            DanglingRef(id) => write!(f, "reference {id:?} has no target to write"),
            InvalidValue { what } => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for MarshalError {}

pub type Result<T> = std::result::Result<T, MarshalError>;

/// Marshal type codes (without `FLAG_REF`).
pub(crate) mod tc {
    pub const FLAG_REF: u8 = 0x80;
    pub const NULL: u8 = b'0';
    pub const NONE: u8 = b'N';
    pub const FALSE: u8 = b'F';
    pub const TRUE: u8 = b'T';
    pub const STOPITER: u8 = b'S';
    pub const ELLIPSIS: u8 = b'.';
    pub const INT: u8 = b'i';
    pub const INT64: u8 = b'I';
    pub const FLOAT: u8 = b'f';
    pub const BINARY_FLOAT: u8 = b'g';
    pub const COMPLEX: u8 = b'x';
    pub const BINARY_COMPLEX: u8 = b'y';
    pub const LONG: u8 = b'l';
    pub const STRING: u8 = b's';
    pub const INTERNED: u8 = b't';
    pub const REF: u8 = b'r';
    pub const TUPLE: u8 = b'(';
    pub const LIST: u8 = b'[';
    pub const DICT: u8 = b'{';
    pub const CODE: u8 = b'c';
    pub const UNICODE: u8 = b'u';
    pub const SET: u8 = b'<';
    pub const FROZENSET: u8 = b'>';
    pub const SLICE: u8 = b':';
    pub const FROZENDICT: u8 = b'}';
    pub const ASCII: u8 = b'a';
    pub const ASCII_INTERNED: u8 = b'A';
    pub const SMALL_TUPLE: u8 = b')';
    pub const SHORT_ASCII: u8 = b'z';
    pub const SHORT_ASCII_INTERNED: u8 = b'Z';
}
