//! The value tree produced by `loads` and consumed by `dumps`.

use super::{tc, CodeLayout};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Identity of an object that carries `FLAG_REF`: which `loads` call produced it (`doc`) and
/// its index in that call's reference list. Objects from different `loads` calls never share
/// an id, so trees from several files can be combined safely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefId {
    pub doc: u32,
    pub index: u32,
}

impl RefId {
    /// `FLAG_REF` without an identity: set on values built by hand that should be registered,
    /// or kept from input where the flag is set on a value the reader never registers
    /// (None, True, ..., or `TYPE_REF` itself).
    pub const ANON: RefId = RefId { doc: 0, index: u32::MAX };

    /// A document number no other `loads` call uses.
    pub(crate) fn new_doc() -> u32 {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}

/// One marshalled value plus its `FLAG_REF` bit.
#[derive(Clone, Debug, PartialEq)]
pub struct Obj {
    pub value: Value,
    /// `Some` when the type byte carries `FLAG_REF`. Values the reader registers get a fresh
    /// index when written; `TYPE_REF` values elsewhere point at this id.
    pub flag: Option<RefId>,
}

/// How a string was stored; decides the type code written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrKind {
    /// `z`: one byte per char, length < 256 (written as `a` if longer).
    ShortAscii,
    /// `Z`
    ShortAsciiInterned,
    /// `a`: one byte per char, 4-byte length.
    Ascii,
    /// `A`
    AsciiInterned,
    /// `u`: UTF-8 with lone surrogates allowed.
    Unicode,
    /// `t`
    Interned,
}

impl StrKind {
    pub fn is_interned(self) -> bool {
        matches!(self, StrKind::ShortAsciiInterned | StrKind::AsciiInterned | StrKind::Interned)
    }
    /// One byte per char (latin-1 payload; CPython does not check it is really ASCII).
    pub fn is_one_byte(self) -> bool {
        !matches!(self, StrKind::Unicode | StrKind::Interned)
    }
    pub(crate) fn type_code(self) -> u8 {
        match self {
            StrKind::ShortAscii => tc::SHORT_ASCII,
            StrKind::ShortAsciiInterned => tc::SHORT_ASCII_INTERNED,
            StrKind::Ascii => tc::ASCII,
            StrKind::AsciiInterned => tc::ASCII_INTERNED,
            StrKind::Unicode => tc::UNICODE,
            StrKind::Interned => tc::INTERNED,
        }
    }
}

/// A back-reference (`TYPE_REF`).
#[derive(Clone, Debug, PartialEq)]
pub struct Ref {
    pub id: RefId,
    /// The object referred to, as read. `None` only for a reference to a container that
    /// encloses the reference itself (a self-containing list), which pycs never have.
    pub target: Option<Arc<Obj>>,
}

/// The marshalled values. There is no NULL: CPython only accepts `TYPE_NULL` as the end of a
/// dict, which `Dict` stands for.
#[derive(Debug, PartialEq)]
pub enum Value {
    None,
    False,
    True,
    Ellipsis,
    StopIteration,
    /// `i`: 32-bit int.
    Int(i32),
    /// `I`: 64-bit int (never written by CPython 3, still accepted).
    Int64(i64),
    /// `l`: arbitrary int as base 2**15 digits, least significant first, no leading zero digit.
    Long {
        negative: bool,
        digits: Vec<u16>,
    },
    /// `g`: IEEE 754 bits of a float (kept as bits so every NaN survives).
    Float(u64),
    /// `f`: float as repr text (marshal version < 2).
    FloatText(Vec<u8>),
    /// `y`: real and imaginary bits.
    Complex(u64, u64),
    /// `x`: real and imaginary as text.
    ComplexText(Box<[Vec<u8>; 2]>),
    /// `s`
    Bytes(Vec<u8>),
    /// Raw payload as stored: latin-1 bytes for the one-byte kinds, UTF-8 (surrogates allowed)
    /// for the others.
    Str {
        kind: StrKind,
        data: Vec<u8>,
    },
    /// `)` (fewer than 256 items) or `(`; `long_form` keeps `(` for a short tuple.
    Tuple {
        items: Vec<Obj>,
        long_form: bool,
    },
    List(Vec<Obj>),
    Dict(Vec<(Obj, Obj)>),
    Set(Vec<Obj>),
    FrozenSet(Vec<Obj>),
    /// 3.15+ (marshal 6).
    FrozenDict(Vec<(Obj, Obj)>),
    /// 3.14+ (marshal 5): start, stop, step.
    Slice(Box<[Obj; 3]>),
    Code(Box<Code>),
    Ref(Ref),
}

/// A code object. Fields common to every release are here; the rest is in `extra`, whose
/// variant is the release's layout. Every field that is an object may be a `Value::Ref`:
/// use [`Obj::resolve`] or the typed accessors ([`Obj::as_bytes`], ...) to read it.
#[derive(Debug)]
pub struct Code {
    pub argcount: i32,
    pub posonlyargcount: i32,
    pub kwonlyargcount: i32,
    pub stacksize: i32,
    pub flags: i32,
    /// bytes
    pub code: Obj,
    /// tuple
    pub consts: Obj,
    /// tuple of str
    pub names: Obj,
    /// str
    pub filename: Obj,
    /// str
    pub name: Obj,
    pub firstlineno: i32,
    /// bytes (3.10: `co_linetable` pairs; 3.11+: PEP 657 location table)
    pub linetable: Obj,
    pub extra: CodeExtra,
}

/// The release-specific fields of a code object.
#[derive(Clone, Debug, PartialEq)]
pub enum CodeExtra {
    Py310 {
        nlocals: i32,
        varnames: Obj,
        freevars: Obj,
        cellvars: Obj,
    },
    Py311 {
        /// tuple of str
        localsplusnames: Obj,
        /// bytes, one `CO_FAST_*` kind per name
        localspluskinds: Obj,
        /// str
        qualname: Obj,
        /// bytes
        exceptiontable: Obj,
    },
}

// By hand so that only the containers are on the recursive path; the rest is out of line.
impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Value::Tuple { items, long_form } => Value::Tuple { items: clone_items(items), long_form: *long_form },
            Value::List(items) => Value::List(clone_items(items)),
            Value::Set(items) => Value::Set(clone_items(items)),
            Value::FrozenSet(items) => Value::FrozenSet(clone_items(items)),
            Value::Dict(pairs) => Value::Dict(clone_pairs(pairs)),
            Value::FrozenDict(pairs) => Value::FrozenDict(clone_pairs(pairs)),
            Value::Code(code) => Value::Code(clone_code(code)),
            other => other.clone_other(),
        }
    }
}

/// Out of line: `Box::new(code.clone())` needs a whole `Code` as a stack temporary.
#[inline(never)]
fn clone_code(code: &Code) -> Box<Code> {
    Box::new(code.clone())
}

#[inline(never)]
fn clone_items(items: &[Obj]) -> Vec<Obj> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(Obj { value: item.value.clone(), flag: item.flag });
    }
    out
}

#[inline(never)]
fn clone_pairs(pairs: &[(Obj, Obj)]) -> Vec<(Obj, Obj)> {
    let mut out = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        out.push((k.clone(), v.clone()));
    }
    out
}

impl Value {
    #[inline(never)]
    fn clone_other(&self) -> Value {
        match self {
            Value::None => Value::None,
            Value::False => Value::False,
            Value::True => Value::True,
            Value::Ellipsis => Value::Ellipsis,
            Value::StopIteration => Value::StopIteration,
            Value::Int(n) => Value::Int(*n),
            Value::Int64(n) => Value::Int64(*n),
            Value::Long { negative, digits } => Value::Long { negative: *negative, digits: digits.clone() },
            Value::Float(bits) => Value::Float(*bits),
            Value::FloatText(text) => Value::FloatText(text.clone()),
            Value::Complex(re, im) => Value::Complex(*re, *im),
            Value::ComplexText(parts) => Value::ComplexText(parts.clone()),
            Value::Bytes(data) => Value::Bytes(data.clone()),
            Value::Str { kind, data } => Value::Str { kind: *kind, data: data.clone() },
            Value::Slice(parts) => Value::Slice(parts.clone()),
            Value::Ref(r) => Value::Ref(r.clone()),
            Value::Tuple { .. }
            | Value::List(_)
            | Value::Set(_)
            | Value::FrozenSet(_)
            | Value::Dict(_)
            | Value::FrozenDict(_)
            | Value::Code(_) => unreachable!("cloned by Value::clone"),
        }
    }
}

// Clone and PartialEq by hand, out of line: inlined into `Value`'s, a code object's dozen
// fields would cost every level of a deep tree a big stack frame.
impl Clone for Code {
    #[inline(never)]
    fn clone(&self) -> Self {
        Code {
            argcount: self.argcount,
            posonlyargcount: self.posonlyargcount,
            kwonlyargcount: self.kwonlyargcount,
            stacksize: self.stacksize,
            flags: self.flags,
            code: self.code.clone(),
            consts: self.consts.clone(),
            names: self.names.clone(),
            filename: self.filename.clone(),
            name: self.name.clone(),
            firstlineno: self.firstlineno,
            linetable: self.linetable.clone(),
            extra: self.extra.clone(),
        }
    }
}

impl PartialEq for Code {
    #[inline(never)]
    fn eq(&self, other: &Self) -> bool {
        (self.argcount, self.posonlyargcount, self.kwonlyargcount, self.stacksize, self.flags)
            == (other.argcount, other.posonlyargcount, other.kwonlyargcount, other.stacksize, other.flags)
            && self.firstlineno == other.firstlineno
            && self.code == other.code
            && self.consts == other.consts
            && self.names == other.names
            && self.filename == other.filename
            && self.name == other.name
            && self.linetable == other.linetable
            && self.extra == other.extra
    }
}

impl Code {
    pub fn layout(&self) -> CodeLayout {
        match self.extra {
            CodeExtra::Py310 { .. } => CodeLayout::Py310,
            CodeExtra::Py311 { .. } => CodeLayout::Py311,
        }
    }
    /// `co_qualname` (3.11+).
    pub fn qualname(&self) -> Option<&Obj> {
        match &self.extra {
            CodeExtra::Py311 { qualname, .. } => Some(qualname),
            CodeExtra::Py310 { .. } => None,
        }
    }
    /// `co_exceptiontable` (3.11+).
    pub fn exceptiontable(&self) -> Option<&Obj> {
        match &self.extra {
            CodeExtra::Py311 { exceptiontable, .. } => Some(exceptiontable),
            CodeExtra::Py310 { .. } => None,
        }
    }
    pub fn exceptiontable_mut(&mut self) -> Option<&mut Obj> {
        match &mut self.extra {
            CodeExtra::Py311 { exceptiontable, .. } => Some(exceptiontable),
            CodeExtra::Py310 { .. } => None,
        }
    }
    /// The object fields in the order they are marshalled for this layout.
    pub fn object_fields(&self) -> Vec<(&'static str, &Obj)> {
        match &self.extra {
            CodeExtra::Py310 { varnames, freevars, cellvars, .. } => vec![
                ("code", &self.code),
                ("consts", &self.consts),
                ("names", &self.names),
                ("varnames", varnames),
                ("freevars", freevars),
                ("cellvars", cellvars),
                ("filename", &self.filename),
                ("name", &self.name),
                ("linetable", &self.linetable),
            ],
            CodeExtra::Py311 { localsplusnames, localspluskinds, qualname, exceptiontable } => {
                vec![
                    ("code", &self.code),
                    ("consts", &self.consts),
                    ("names", &self.names),
                    ("localsplusnames", localsplusnames),
                    ("localspluskinds", localspluskinds),
                    ("filename", &self.filename),
                    ("name", &self.name),
                    ("qualname", qualname),
                    ("linetable", &self.linetable),
                    ("exceptiontable", exceptiontable),
                ]
            }
        }
    }
    /// The object fields, mutable, in the order they are marshalled (which is also the order
    /// references between them go).
    pub(crate) fn object_fields_mut(&mut self) -> Vec<&mut Obj> {
        let Code { code, consts, names, filename, name, linetable, extra, .. } = self;
        match extra {
            CodeExtra::Py310 { varnames, freevars, cellvars, .. } => {
                vec![code, consts, names, varnames, freevars, cellvars, filename, name, linetable]
            }
            CodeExtra::Py311 { localsplusnames, localspluskinds, qualname, exceptiontable } => vec![
                code,
                consts,
                names,
                localsplusnames,
                localspluskinds,
                filename,
                name,
                qualname,
                linetable,
                exceptiontable,
            ],
        }
    }
}

impl From<Value> for Obj {
    fn from(value: Value) -> Self {
        Obj { value, flag: None }
    }
}

impl Obj {
    pub fn new(value: Value) -> Self {
        Obj { value, flag: None }
    }
    pub fn none() -> Self {
        Value::None.into()
    }
    pub fn bool(b: bool) -> Self {
        if b { Value::True } else { Value::False }.into()
    }
    pub fn bytes(data: impl Into<Vec<u8>>) -> Self {
        Value::Bytes(data.into()).into()
    }
    /// A str stored the way CPython stores a non-interned str of this content.
    pub fn str(s: &str) -> Self {
        Self::str_with(s, false)
    }
    /// A str stored the way CPython stores an interned str (identifiers, names).
    pub fn interned(s: &str) -> Self {
        Self::str_with(s, true)
    }
    fn str_with(s: &str, interned: bool) -> Self {
        let kind = match (s.is_ascii(), s.len() < 256, interned) {
            (true, true, false) => StrKind::ShortAscii,
            (true, true, true) => StrKind::ShortAsciiInterned,
            (true, false, false) => StrKind::Ascii,
            (true, false, true) => StrKind::AsciiInterned,
            (false, _, false) => StrKind::Unicode,
            (false, _, true) => StrKind::Interned,
        };
        Value::Str { kind, data: s.as_bytes().to_vec() }.into()
    }
    /// An int, as `i` when it fits 32 bits (as CPython writes it), else as `l`.
    pub fn int(n: i64) -> Self {
        Self::int_big(n as i128)
    }
    pub fn int_big(n: i128) -> Self {
        if let Ok(small) = i32::try_from(n) {
            return Value::Int(small).into();
        }
        let negative = n < 0;
        let mut rest = n.unsigned_abs();
        let mut digits = Vec::new();
        while rest != 0 {
            digits.push((rest & 0x7fff) as u16);
            rest >>= 15;
        }
        Value::Long { negative, digits }.into()
    }
    pub fn float(x: f64) -> Self {
        Value::Float(x.to_bits()).into()
    }
    pub fn tuple(items: Vec<Obj>) -> Self {
        Value::Tuple { items, long_form: false }.into()
    }
    pub fn code(code: Code) -> Self {
        Value::Code(Box::new(code)).into()
    }

    /// The object a `Value::Ref` points to (as read); any other object is returned as is.
    pub fn resolve(&self) -> &Obj {
        let mut obj = self;
        // A target is never itself a Ref (targets are registered objects), but be robust.
        while let Value::Ref(Ref { target: Some(t), .. }) = &obj.value {
            obj = t;
        }
        obj
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.resolve().value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_tuple(&self) -> Option<&[Obj]> {
        match &self.resolve().value {
            Value::Tuple { items, .. } => Some(items),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[Obj]> {
        match &self.resolve().value {
            Value::List(items) => Some(items),
            _ => None,
        }
    }
    pub fn as_code(&self) -> Option<&Code> {
        match &self.resolve().value {
            Value::Code(c) => Some(c),
            _ => None,
        }
    }
    /// The int value if it fits in an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match &self.resolve().value {
            Value::Int(n) => Some(*n as i64),
            Value::Int64(n) => Some(*n),
            Value::Long { negative, digits } => {
                let mut acc: i128 = 0;
                for &d in digits.iter().rev() {
                    acc = (acc << 15) | d as i128;
                    if acc > i64::MAX as i128 + 1 {
                        return None;
                    }
                }
                let v = if *negative { -acc } else { acc };
                i64::try_from(v).ok()
            }
            _ => None,
        }
    }
    /// The text of a str. One-byte kinds are latin-1; lone surrogates become U+FFFD.
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match &self.resolve().value {
            Value::Str { kind, data } if kind.is_one_byte() => Some(match std::str::from_utf8(data) {
                Ok(s) if data.is_ascii() => Cow::Borrowed(s),
                _ => Cow::Owned(data.iter().map(|&b| b as char).collect()),
            }),
            Value::Str { data, .. } => Some(String::from_utf8_lossy(data)),
            _ => None,
        }
    }
}
