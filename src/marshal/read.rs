//! marshal bytes → `Obj`, mirroring CPython's `r_object` (what it accepts and how it numbers
//! references), with every length checked against the remaining input before allocating.

use super::obj::{Code, CodeExtra, Obj, Ref, RefId, StrKind, Value};
use super::{tc, CodeLayout, ErrorKind, MarshalError, PyVersion, Result, MAX_DEPTH};
use std::sync::Arc;

/// Read one object from `data` as written by Python `version`; trailing bytes are ignored,
/// as `marshal.loads` does.
pub fn loads(data: &[u8], version: PyVersion) -> Result<Obj> {
    loads_prefix(data, version).map(|(obj, _)| obj)
}

/// Like [`loads`], also returning how many bytes the object took.
pub fn loads_prefix(data: &[u8], version: PyVersion) -> Result<(Obj, usize)> {
    let marshal_version = version
        .marshal_version()
        .ok_or(MarshalError::new(0, ErrorKind::UnsupportedVersion(version)))?;
    let mut r = Reader {
        data,
        pos: 0,
        depth: 0,
        marshal_version,
        layout: version.code_layout(),
        doc: RefId::new_doc(),
        slots: Vec::new(),
        referenced: Vec::new(),
        any_ref: false,
    };
    let mut root = r.object("top level object")?;
    if r.any_ref {
        let mut targets: Vec<Option<Arc<Obj>>> = vec![None; r.slots.len()];
        attach_targets(&mut root, &mut targets, &r.referenced, r.doc);
    }
    Ok((root, r.pos))
}

/// Slot state in the reference list: the type code of the registered object, or 0 while a
/// frozenset/code/slice/frozendict is still being read (CPython's `r_ref_reserve`).
const RESERVED: u8 = 0;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    depth: u32,
    marshal_version: u8,
    layout: CodeLayout,
    doc: u32,
    slots: Vec<u8>,
    referenced: Vec<bool>,
    any_ref: bool,
}

fn err<T>(offset: usize, kind: ErrorKind) -> Result<T> {
    Err(MarshalError::new(offset, kind))
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return err(self.pos, ErrorKind::Truncated { what });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn i32(&mut self, what: &'static str) -> Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A 4-byte size: CPython rejects negative ones (and, on 64-bit, none can exceed 2**31-1).
    fn size(&mut self, what: &'static str) -> Result<usize> {
        let at = self.pos;
        let n = self.i32(what)?;
        if n < 0 {
            return err(
                at,
                ErrorKind::SizeOutOfRange {
                    what,
                    size: n as i64,
                },
            );
        }
        Ok(n as usize)
    }

    /// Rejects a count whose items need at least `min_bytes_each` bytes that cannot all be
    /// there, before anything is allocated for them.
    fn check_fits(
        &self,
        at: usize,
        count: usize,
        min_bytes_each: usize,
        what: &'static str,
    ) -> Result<()> {
        let need = count as u64 * min_bytes_each as u64;
        if need > self.remaining() as u64 {
            return err(
                at,
                ErrorKind::SizeExceedsInput {
                    what,
                    size: count as u64,
                    remaining: self.remaining(),
                },
            );
        }
        Ok(())
    }

    /// Registers a flagged object in the reference list (before its children, as CPython
    /// does), `complete` false for the kinds CPython only fills in once fully read.
    fn register(&mut self, flagged: bool, type_code: u8, complete: bool) -> Option<RefId> {
        if !flagged {
            return None;
        }
        let index = self.slots.len() as u32;
        self.slots.push(if complete { type_code } else { RESERVED });
        self.referenced.push(false);
        Some(RefId {
            doc: self.doc,
            index,
        })
    }

    fn complete(&mut self, id: Option<RefId>, type_code: u8) {
        if let Some(id) = id {
            self.slots[id.index as usize] = type_code;
        }
    }

    /// One object that must not be NULL.
    fn object(&mut self, context: &'static str) -> Result<Obj> {
        let at = self.pos;
        match self.object_or_null()? {
            Some(obj) => Ok(obj),
            None => err(at, ErrorKind::NullObject { context }),
        }
    }

    fn object_or_null(&mut self) -> Result<Option<Obj>> {
        let at = self.pos;
        let code = self.u8("type code")?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(at, ErrorKind::TooDeep);
        }
        let result = self.value(at, code);
        self.depth -= 1;
        result
    }

    fn value(&mut self, at: usize, code: u8) -> Result<Option<Obj>> {
        let flagged = code & tc::FLAG_REF != 0;
        let ty = code & !tc::FLAG_REF;
        // For values CPython never registers, a set flag bit is kept but means nothing.
        let stray = if flagged { Some(RefId::ANON) } else { None };
        let simple = |value: Value| Ok(Some(Obj { value, flag: stray }));
        match ty {
            tc::NULL => {
                // Only a dict terminator; the flag bit on it cannot be kept (never written).
                Ok(None)
            }
            tc::NONE => simple(Value::None),
            tc::FALSE => simple(Value::False),
            tc::TRUE => simple(Value::True),
            tc::ELLIPSIS => simple(Value::Ellipsis),
            tc::STOPITER => simple(Value::StopIteration),
            tc::REF => {
                let n = self.i32("reference index")?;
                if n < 0 || n as usize >= self.slots.len() {
                    return err(at, ErrorKind::InvalidRef(n as i64));
                }
                if self.slots[n as usize] == RESERVED {
                    return err(at, ErrorKind::RefToIncomplete(n as u32));
                }
                self.referenced[n as usize] = true;
                self.any_ref = true;
                let id = RefId {
                    doc: self.doc,
                    index: n as u32,
                };
                simple(Value::Ref(Ref { id, target: None }))
            }
            _ => self.registered_value(at, ty, flagged).map(Some),
        }
    }

    /// Values that CPython adds to the reference list when flagged.
    fn registered_value(&mut self, at: usize, ty: u8, flagged: bool) -> Result<Obj> {
        // Leaves register after their payload, containers before their children; either
        // way the index is the order of the type bytes, so register first.
        let complete_early = !matches!(ty, tc::FROZENSET | tc::CODE | tc::SLICE | tc::FROZENDICT);
        let known = matches!(
            ty,
            tc::INT
                | tc::INT64
                | tc::LONG
                | tc::FLOAT
                | tc::BINARY_FLOAT
                | tc::COMPLEX
                | tc::BINARY_COMPLEX
                | tc::STRING
                | tc::ASCII
                | tc::ASCII_INTERNED
                | tc::SHORT_ASCII
                | tc::SHORT_ASCII_INTERNED
                | tc::UNICODE
                | tc::INTERNED
                | tc::SMALL_TUPLE
                | tc::TUPLE
                | tc::LIST
                | tc::DICT
                | tc::SET
                | tc::FROZENSET
                | tc::CODE
                | tc::SLICE
                | tc::FROZENDICT
        );
        if !known {
            return err(at, ErrorKind::UnknownTypeCode(ty));
        }
        let min_version = match ty {
            tc::SLICE => 5,
            tc::FROZENDICT => 6,
            _ => 0,
        };
        if self.marshal_version < min_version {
            return err(
                at,
                ErrorKind::TypeNotInVersion {
                    code: ty,
                    marshal_version: self.marshal_version,
                },
            );
        }
        let id = self.register(flagged, ty, complete_early);
        let value = match ty {
            tc::INT => Value::Int(self.i32("int")?),
            tc::INT64 => {
                let b = self.take(8, "int64")?;
                Value::Int64(i64::from_le_bytes(b.try_into().unwrap()))
            }
            tc::LONG => self.long(at)?,
            tc::BINARY_FLOAT => Value::Float(self.f64_bits("float")?),
            tc::FLOAT => Value::FloatText(self.float_text()?),
            tc::BINARY_COMPLEX => {
                let re = self.f64_bits("complex")?;
                Value::Complex(re, self.f64_bits("complex")?)
            }
            tc::COMPLEX => {
                let re = self.float_text()?;
                Value::ComplexText(Box::new([re, self.float_text()?]))
            }
            tc::STRING => {
                let n = self.size("bytes")?;
                Value::Bytes(self.take(n, "bytes")?.to_vec())
            }
            tc::ASCII | tc::ASCII_INTERNED | tc::SHORT_ASCII | tc::SHORT_ASCII_INTERNED => {
                let (kind, n) = match ty {
                    tc::ASCII => (StrKind::Ascii, self.size("str")?),
                    tc::ASCII_INTERNED => (StrKind::AsciiInterned, self.size("str")?),
                    tc::SHORT_ASCII => (StrKind::ShortAscii, self.u8("str")? as usize),
                    _ => (StrKind::ShortAsciiInterned, self.u8("str")? as usize),
                };
                Value::Str {
                    kind,
                    data: self.take(n, "str")?.to_vec(),
                }
            }
            tc::UNICODE | tc::INTERNED => {
                let kind = if ty == tc::UNICODE {
                    StrKind::Unicode
                } else {
                    StrKind::Interned
                };
                let n = self.size("str")?;
                let data_at = self.pos;
                let data = self.take(n, "str")?;
                if !is_utf8_surrogatepass(data) {
                    return err(data_at, ErrorKind::InvalidUtf8);
                }
                Value::Str {
                    kind,
                    data: data.to_vec(),
                }
            }
            tc::SMALL_TUPLE | tc::TUPLE => {
                let n = if ty == tc::SMALL_TUPLE {
                    self.u8("tuple size")? as usize
                } else {
                    self.size("tuple")?
                };
                let items = self.items(at, n, "tuple")?;
                Value::Tuple {
                    items,
                    long_form: ty == tc::TUPLE && n < 256,
                }
            }
            tc::LIST => {
                let n = self.size("list")?;
                Value::List(self.items(at, n, "list")?)
            }
            tc::SET | tc::FROZENSET => {
                let n = self.size("set")?;
                let items = self.items(at, n, "set")?;
                if ty == tc::SET {
                    Value::Set(items)
                } else {
                    Value::FrozenSet(items)
                }
            }
            tc::DICT => Value::Dict(self.pairs()?),
            tc::FROZENDICT => Value::FrozenDict(self.pairs()?),
            tc::SLICE => {
                let start = self.object("slice")?;
                let stop = self.object("slice")?;
                let step = self.object("slice")?;
                Value::Slice(Box::new([start, stop, step]))
            }
            tc::CODE => Value::Code(Box::new(self.code()?)),
            _ => unreachable!("checked above"),
        };
        if !complete_early {
            self.complete(id, ty);
        }
        Ok(Obj { value, flag: id })
    }

    fn f64_bits(&mut self, what: &'static str) -> Result<u64> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    }

    /// `f`/`x` payload: one length byte and repr text, which CPython parses as a C string.
    fn float_text(&mut self) -> Result<Vec<u8>> {
        let n = self.u8("float text")? as usize;
        let at = self.pos;
        let text = self.take(n, "float text")?;
        let c_str = text.split(|&b| b == 0).next().unwrap_or(&[]);
        let ok = std::str::from_utf8(c_str)
            .map(|s| s.parse::<f64>().is_ok())
            .unwrap_or(false);
        if !ok {
            return err(at, ErrorKind::BadFloatText);
        }
        Ok(text.to_vec())
    }

    fn long(&mut self, at: usize) -> Result<Value> {
        let n = self.i32("long size")?;
        if n == i32::MIN {
            return err(
                at,
                ErrorKind::SizeOutOfRange {
                    what: "long",
                    size: n as i64,
                },
            );
        }
        let count = n.unsigned_abs() as usize;
        self.check_fits(at, count, 2, "long")?;
        let raw = self.take(count * 2, "long digits")?;
        let mut digits = Vec::with_capacity(count);
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            let d = u16::from_le_bytes([pair[0], pair[1]]);
            if d > 0x7fff {
                return err(at + 5 + 2 * i, ErrorKind::LongDigitOutOfRange(d));
            }
            digits.push(d);
        }
        if digits.last() == Some(&0) {
            return err(at, ErrorKind::UnnormalizedLong);
        }
        Ok(Value::Long {
            negative: n < 0,
            digits,
        })
    }

    fn items(&mut self, at: usize, n: usize, what: &'static str) -> Result<Vec<Obj>> {
        // Every item takes at least its type byte.
        self.check_fits(at, n, 1, what)?;
        let mut items = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            items.push(self.object(what)?);
        }
        Ok(items)
    }

    /// Key/value pairs up to the NULL terminator.
    fn pairs(&mut self) -> Result<Vec<(Obj, Obj)>> {
        let mut pairs = Vec::new();
        while let Some(key) = self.object_or_null()? {
            // CPython quietly ends the dict at a NULL value, dropping the key; no writer
            // produces that, so it is refused here.
            let value = self.object("dict value")?;
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    /// The type code a field resolves to (through a reference).
    fn type_of(&self, obj: &Obj) -> u8 {
        match &obj.value {
            Value::Ref(r) => self.slots[r.id.index as usize],
            Value::Bytes(_) => tc::STRING,
            Value::Str { .. } => tc::UNICODE,
            Value::Tuple { .. } => tc::TUPLE,
            _ => 0,
        }
    }

    fn field(&mut self, field: &'static str, expected: u8) -> Result<Obj> {
        let at = self.pos;
        let obj = self.object("code object")?;
        let t = self.type_of(&obj);
        let ok = match expected {
            tc::STRING => t == tc::STRING,
            tc::TUPLE => matches!(t, tc::TUPLE | tc::SMALL_TUPLE),
            _ => matches!(
                t,
                tc::UNICODE
                    | tc::INTERNED
                    | tc::ASCII
                    | tc::ASCII_INTERNED
                    | tc::SHORT_ASCII
                    | tc::SHORT_ASCII_INTERNED
            ),
        };
        if !ok {
            let expected = match expected {
                tc::STRING => "bytes",
                tc::TUPLE => "a tuple",
                _ => "a str",
            };
            return err(at, ErrorKind::CodeFieldType { field, expected });
        }
        Ok(obj)
    }

    fn code(&mut self) -> Result<Code> {
        const BYTES: u8 = tc::STRING;
        const TUPLE: u8 = tc::TUPLE;
        const STR: u8 = tc::UNICODE;
        let argcount = self.i32("code object")?;
        let posonlyargcount = self.i32("code object")?;
        let kwonlyargcount = self.i32("code object")?;
        let nlocals = if self.layout == CodeLayout::Py310 {
            self.i32("code object")?
        } else {
            0
        };
        let stacksize = self.i32("code object")?;
        let flags = self.i32("code object")?;
        let code = self.field("code", BYTES)?;
        let consts = self.field("consts", TUPLE)?;
        let names = self.field("names", TUPLE)?;
        Ok(match self.layout {
            CodeLayout::Py310 => {
                let varnames = self.field("varnames", TUPLE)?;
                let freevars = self.field("freevars", TUPLE)?;
                let cellvars = self.field("cellvars", TUPLE)?;
                let filename = self.field("filename", STR)?;
                let name = self.field("name", STR)?;
                let firstlineno = self.i32("code object")?;
                let linetable = self.field("linetable", BYTES)?;
                Code {
                    argcount,
                    posonlyargcount,
                    kwonlyargcount,
                    stacksize,
                    flags,
                    code,
                    consts,
                    names,
                    filename,
                    name,
                    firstlineno,
                    linetable,
                    extra: CodeExtra::Py310 {
                        nlocals,
                        varnames,
                        freevars,
                        cellvars,
                    },
                }
            }
            CodeLayout::Py311 => {
                let localsplusnames = self.field("localsplusnames", TUPLE)?;
                let localspluskinds = self.field("localspluskinds", BYTES)?;
                let filename = self.field("filename", STR)?;
                let name = self.field("name", STR)?;
                let qualname = self.field("qualname", STR)?;
                let firstlineno = self.i32("code object")?;
                let linetable = self.field("linetable", BYTES)?;
                let exceptiontable = self.field("exceptiontable", BYTES)?;
                Code {
                    argcount,
                    posonlyargcount,
                    kwonlyargcount,
                    stacksize,
                    flags,
                    code,
                    consts,
                    names,
                    filename,
                    name,
                    firstlineno,
                    linetable,
                    extra: CodeExtra::Py311 {
                        localsplusnames,
                        localspluskinds,
                        qualname,
                        exceptiontable,
                    },
                }
            }
        })
    }
}

/// Fills every `Ref::target`, in the reader's order: a referenced object is complete (and
/// cloned) before any reference to it, except references to an enclosing container.
fn attach_targets(obj: &mut Obj, targets: &mut [Option<Arc<Obj>>], referenced: &[bool], doc: u32) {
    match &mut obj.value {
        Value::Ref(r) => r.target = targets[r.id.index as usize].clone(),
        Value::Tuple { items, .. }
        | Value::List(items)
        | Value::Set(items)
        | Value::FrozenSet(items) => {
            for item in items {
                attach_targets(item, targets, referenced, doc);
            }
        }
        Value::Dict(pairs) | Value::FrozenDict(pairs) => {
            for (k, v) in pairs {
                attach_targets(k, targets, referenced, doc);
                attach_targets(v, targets, referenced, doc);
            }
        }
        Value::Slice(parts) => {
            for part in parts.iter_mut() {
                attach_targets(part, targets, referenced, doc);
            }
        }
        Value::Code(code) => {
            for field in code.object_fields_mut() {
                attach_targets(field, targets, referenced, doc);
            }
        }
        _ => {}
    }
    if let Some(id) = obj.flag {
        if id.doc == doc && referenced.get(id.index as usize) == Some(&true) {
            targets[id.index as usize] = Some(Arc::new(obj.clone()));
        }
    }
}

/// UTF-8 as CPython's `surrogatepass` decoder accepts it: standard UTF-8 plus the three-byte
/// encodings of U+D800..U+DFFF.
pub(crate) fn is_utf8_surrogatepass(mut data: &[u8]) -> bool {
    loop {
        match std::str::from_utf8(data) {
            Ok(_) => return true,
            Err(e) => {
                let bad = &data[e.valid_up_to()..];
                let is_surrogate = bad.len() >= 3
                    && bad[0] == 0xED
                    && (0xA0..=0xBF).contains(&bad[1])
                    && (0x80..=0xBF).contains(&bad[2]);
                if !is_surrogate {
                    return false;
                }
                data = &bad[3..];
            }
        }
    }
}
