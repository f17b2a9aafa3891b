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
    let marshal_version =
        version.marshal_version().ok_or(MarshalError::new(0, ErrorKind::UnsupportedVersion(version)))?;
    let mut r = Reader {
        data,
        pos: 0,
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
            return err(at, ErrorKind::SizeOutOfRange { what, size: n as i64 });
        }
        Ok(n as usize)
    }

    /// Rejects a count whose items need at least `min_bytes_each` bytes that cannot all be
    /// there, before anything is allocated for them.
    fn check_fits(&self, at: usize, count: usize, min_bytes_each: usize, what: &'static str) -> Result<()> {
        let need = count as u64 * min_bytes_each as u64;
        if need > self.remaining() as u64 {
            return err(at, ErrorKind::SizeExceedsInput { what, size: count as u64, remaining: self.remaining() });
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
        Some(RefId { doc: self.doc, index })
    }

    fn complete(&mut self, id: Option<RefId>, type_code: u8) {
        if let Some(id) = id {
            self.slots[id.index as usize] = type_code;
        }
    }

    /// The whole object tree, read with an explicit stack of unfinished containers, so that
    /// nesting costs heap, not call stack.
    fn object(&mut self, context: &'static str) -> Result<Obj> {
        let mut stack: Vec<Frame> = Vec::new();
        // Where each unfinished container started, for error offsets.
        let mut starts: Vec<usize> = Vec::new();
        loop {
            let at = self.pos;
            let code = self.u8("type code")?;
            // Depth as CPython counts it: this object plus every container around it.
            if stack.len() as u32 + 1 > MAX_DEPTH {
                return err(at, ErrorKind::TooDeep);
            }
            let (mut done, mut done_at) = match self.start_value(at, code)? {
                Started::Done(obj) => (obj, at),
                Started::Frame(frame) => {
                    stack.push(frame);
                    starts.push(at);
                    match self.finish_ready(&mut stack)? {
                        Some(obj) => (obj, starts.pop().unwrap_or(at)),
                        None => continue,
                    }
                }
                Started::Null => {
                    if !matches!(stack.last(), Some(Frame::Map { key: None, .. })) {
                        let context = stack.last().map_or(context, Frame::context);
                        return err(at, ErrorKind::NullObject { context });
                    }
                    let Some(Frame::Map { id, frozen, pairs, .. }) = stack.pop() else { unreachable!("checked above") };
                    if frozen {
                        self.complete(id, tc::FROZENDICT);
                    }
                    let value = if frozen { Value::FrozenDict(pairs) } else { Value::Dict(pairs) };
                    (Obj { value, flag: id }, starts.pop().unwrap_or(at))
                }
            };
            // Hand finished objects up until one lands in a container that wants more.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(done);
                };
                self.accept(top, done_at, done)?;
                match self.finish_ready(&mut stack)? {
                    Some(obj) => {
                        done = obj;
                        done_at = starts.pop().unwrap_or(at);
                    }
                    None => break,
                }
            }
        }
    }

    /// Reads a type byte's payload: a finished object, or a container whose children follow.
    fn start_value(&mut self, at: usize, code: u8) -> Result<Started> {
        let flagged = code & tc::FLAG_REF != 0;
        let ty = code & !tc::FLAG_REF;
        // For values CPython never registers, a set flag bit is kept but means nothing.
        let stray = if flagged { Some(RefId::ANON) } else { None };
        let simple = |value: Value| Ok(Started::Done(Obj { value, flag: stray }));
        match ty {
            // Only a dict terminator; a flag bit on it cannot be kept (never written).
            tc::NULL => Ok(Started::Null),
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
                let id = RefId { doc: self.doc, index: n as u32 };
                simple(Value::Ref(Ref { id, target: None }))
            }
            _ => self.start_registered(at, ty, flagged),
        }
    }

    /// Values that CPython adds to the reference list when flagged.
    fn start_registered(&mut self, at: usize, ty: u8, flagged: bool) -> Result<Started> {
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
            return err(at, ErrorKind::TypeNotInVersion { code: ty, marshal_version: self.marshal_version });
        }
        // Leaves register after their payload, containers before their children; either way
        // the index follows the order of the type bytes, so register now. Frozensets, code
        // objects, slices and frozendicts stay unusable until complete (`r_ref_reserve`).
        let complete_early = !matches!(ty, tc::FROZENSET | tc::CODE | tc::SLICE | tc::FROZENDICT);
        let id = self.register(flagged, ty, complete_early);
        let seq = |kind: SeqKind, items_left: usize, what: &'static str| Frame::Seq {
            kind,
            id,
            items: Vec::with_capacity(items_left.min(1 << 12)),
            left: items_left,
            what,
        };
        Ok(Started::Frame(match ty {
            tc::SMALL_TUPLE | tc::TUPLE => {
                let n = if ty == tc::SMALL_TUPLE { self.u8("tuple size")? as usize } else { self.size("tuple")? };
                self.check_fits(at, n, 1, "tuple")?;
                seq(SeqKind::Tuple { long_form: ty == tc::TUPLE && n < 256 }, n, "tuple")
            }
            tc::LIST => {
                let n = self.size("list")?;
                self.check_fits(at, n, 1, "list")?;
                seq(SeqKind::List, n, "list")
            }
            tc::SET | tc::FROZENSET => {
                let n = self.size("set")?;
                self.check_fits(at, n, 1, "set")?;
                if ty == tc::FROZENSET && n == 0 {
                    // CPython registers the empty frozenset singleton at once.
                    self.complete(id, ty);
                }
                seq(if ty == tc::SET { SeqKind::Set } else { SeqKind::FrozenSet }, n, "set")
            }
            tc::DICT | tc::FROZENDICT => Frame::Map { id, frozen: ty == tc::FROZENDICT, pairs: Vec::new(), key: None },
            tc::SLICE => seq(SeqKind::Slice, 3, "slice"),
            tc::CODE => Frame::Code { id, header: self.code_header()?, fields: Vec::with_capacity(10) },
            _ => return Ok(Started::Done(Obj { value: self.leaf(at, ty)?, flag: id })),
        }))
    }

    /// Adds a finished child to the innermost unfinished container.
    fn accept(&mut self, frame: &mut Frame, at: usize, obj: Obj) -> Result<()> {
        match frame {
            Frame::Seq { items, left, .. } => {
                items.push(obj);
                *left -= 1;
            }
            Frame::Map { pairs, key, .. } => match key.take() {
                None => *key = Some(obj),
                Some(k) => pairs.push((k, obj)),
            },
            Frame::Code { fields, header, .. } => {
                let (field, expected) = self.code_field_spec(fields.len());
                let t = self.type_of(&obj);
                let ok = match expected {
                    FieldType::Bytes => t == tc::STRING,
                    FieldType::Tuple => matches!(t, tc::TUPLE | tc::SMALL_TUPLE),
                    FieldType::Str => matches!(
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
                        FieldType::Bytes => "bytes",
                        FieldType::Tuple => "a tuple",
                        FieldType::Str => "a str",
                    };
                    return err(at, ErrorKind::CodeFieldType { field, expected });
                }
                fields.push(obj);
                // firstlineno sits between the name fields and the line table.
                if field == self.field_before_firstlineno() {
                    header.firstlineno = self.i32("code object")?;
                }
            }
        }
        Ok(())
    }

    /// Pops and builds the innermost container if it has all its children.
    fn finish_ready(&mut self, stack: &mut Vec<Frame>) -> Result<Option<Obj>> {
        let ready = match stack.last() {
            Some(Frame::Seq { left, .. }) => *left == 0,
            Some(Frame::Code { fields, .. }) => fields.len() == self.code_field_count(),
            _ => false,
        };
        if !ready {
            return Ok(None);
        }
        Ok(Some(match stack.pop() {
            Some(Frame::Seq { kind, id, items, .. }) => {
                let value = match kind {
                    SeqKind::Tuple { long_form } => Value::Tuple { items, long_form },
                    SeqKind::List => Value::List(items),
                    SeqKind::Set => Value::Set(items),
                    SeqKind::FrozenSet => {
                        self.complete(id, tc::FROZENSET);
                        Value::FrozenSet(items)
                    }
                    SeqKind::Slice => {
                        self.complete(id, tc::SLICE);
                        let [a, b, c]: [Obj; 3] = items.try_into().expect("three parts");
                        Value::Slice(Box::new([a, b, c]))
                    }
                };
                Obj { value, flag: id }
            }
            Some(Frame::Code { id, header, fields }) => {
                self.complete(id, tc::CODE);
                Obj { value: Value::Code(self.build_code(header, fields)), flag: id }
            }
            _ => unreachable!("checked above"),
        }))
    }

    /// Values without children. Kept out of line so that the recursive path stays small
    /// on the stack (2000 levels must fit in a thread's stack).
    #[inline(never)]
    fn leaf(&mut self, at: usize, ty: u8) -> Result<Value> {
        Ok(match ty {
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
                Value::Str { kind, data: self.take(n, "str")?.to_vec() }
            }
            tc::UNICODE | tc::INTERNED => {
                let kind = if ty == tc::UNICODE { StrKind::Unicode } else { StrKind::Interned };
                let n = self.size("str")?;
                let data_at = self.pos;
                let data = self.take(n, "str")?;
                if !is_utf8_surrogatepass(data) {
                    return err(data_at, ErrorKind::InvalidUtf8);
                }
                Value::Str { kind, data: data.to_vec() }
            }
            _ => unreachable!("type codes are checked before"),
        })
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
        let ok = std::str::from_utf8(c_str).map(|s| s.parse::<f64>().is_ok()).unwrap_or(false);
        if !ok {
            return err(at, ErrorKind::BadFloatText);
        }
        Ok(text.to_vec())
    }

    fn long(&mut self, at: usize) -> Result<Value> {
        let n = self.i32("long size")?;
        if n == i32::MIN {
            return err(at, ErrorKind::SizeOutOfRange { what: "long", size: n as i64 });
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
        Ok(Value::Long { negative: n < 0, digits })
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

    /// The integers at the start of a code object.
    fn code_header(&mut self) -> Result<CodeHeader> {
        let argcount = self.i32("code object")?;
        let posonlyargcount = self.i32("code object")?;
        let kwonlyargcount = self.i32("code object")?;
        let nlocals = if self.layout == CodeLayout::Py310 { self.i32("code object")? } else { 0 };
        let stacksize = self.i32("code object")?;
        let flags = self.i32("code object")?;
        Ok(CodeHeader { argcount, posonlyargcount, kwonlyargcount, nlocals, stacksize, flags, firstlineno: 0 })
    }

    fn code_fields(&self) -> &'static [(&'static str, FieldType)] {
        use FieldType::*;
        match self.layout {
            CodeLayout::Py310 => &[
                ("code", Bytes),
                ("consts", Tuple),
                ("names", Tuple),
                ("varnames", Tuple),
                ("freevars", Tuple),
                ("cellvars", Tuple),
                ("filename", Str),
                ("name", Str),
                ("linetable", Bytes),
            ],
            CodeLayout::Py311 => &[
                ("code", Bytes),
                ("consts", Tuple),
                ("names", Tuple),
                ("localsplusnames", Tuple),
                ("localspluskinds", Bytes),
                ("filename", Str),
                ("name", Str),
                ("qualname", Str),
                ("linetable", Bytes),
                ("exceptiontable", Bytes),
            ],
        }
    }

    fn code_field_spec(&self, index: usize) -> (&'static str, FieldType) {
        self.code_fields()[index]
    }

    fn code_field_count(&self) -> usize {
        self.code_fields().len()
    }

    fn field_before_firstlineno(&self) -> &'static str {
        match self.layout {
            CodeLayout::Py310 => "name",
            CodeLayout::Py311 => "qualname",
        }
    }

    fn build_code(&self, h: CodeHeader, fields: Vec<Obj>) -> Box<Code> {
        let mut f = fields.into_iter();
        let mut next = || f.next().expect("all fields read");
        let (code, consts, names) = (next(), next(), next());
        let (extra, filename, name, linetable) = match self.layout {
            CodeLayout::Py310 => {
                let (varnames, freevars, cellvars) = (next(), next(), next());
                let (filename, name, linetable) = (next(), next(), next());
                let extra = CodeExtra::Py310 { nlocals: h.nlocals, varnames, freevars, cellvars };
                (extra, filename, name, linetable)
            }
            CodeLayout::Py311 => {
                let (localsplusnames, localspluskinds) = (next(), next());
                let (filename, name, qualname) = (next(), next(), next());
                let (linetable, exceptiontable) = (next(), next());
                let extra = CodeExtra::Py311 { localsplusnames, localspluskinds, qualname, exceptiontable };
                (extra, filename, name, linetable)
            }
        };
        Box::new(Code {
            argcount: h.argcount,
            posonlyargcount: h.posonlyargcount,
            kwonlyargcount: h.kwonlyargcount,
            stacksize: h.stacksize,
            flags: h.flags,
            code,
            consts,
            names,
            filename,
            name,
            firstlineno: h.firstlineno,
            linetable,
            extra,
        })
    }
}

enum Started {
    Done(Obj),
    Frame(Frame),
    Null,
}

#[derive(Clone, Copy)]
enum SeqKind {
    Tuple { long_form: bool },
    List,
    Set,
    FrozenSet,
    Slice,
}

#[derive(Clone, Copy)]
enum FieldType {
    Bytes,
    Tuple,
    Str,
}

struct CodeHeader {
    argcount: i32,
    posonlyargcount: i32,
    kwonlyargcount: i32,
    nlocals: i32,
    stacksize: i32,
    flags: i32,
    firstlineno: i32,
}

/// A container whose children are still being read.
enum Frame {
    Seq { kind: SeqKind, id: Option<RefId>, items: Vec<Obj>, left: usize, what: &'static str },
    Map { id: Option<RefId>, frozen: bool, pairs: Vec<(Obj, Obj)>, key: Option<Obj> },
    Code { id: Option<RefId>, header: CodeHeader, fields: Vec<Obj> },
}

impl Frame {
    /// Where a NULL was found, for the error message.
    fn context(&self) -> &'static str {
        match self {
            Frame::Seq { what, .. } => what,
            Frame::Map { .. } => "dict value",
            Frame::Code { .. } => "code object",
        }
    }
}

/// Fills every `Ref::target`. Both passes use explicit stacks, not recursion.
fn attach_targets(root: &mut Obj, targets: &mut [Option<Arc<Obj>>], referenced: &[bool], doc: u32) {
    let is_referenced = |obj: &Obj| match obj.flag {
        Some(id) if id.doc == doc => referenced.get(id.index as usize) == Some(&true),
        _ => false,
    };
    // 1. Copy every referenced object once complete (post-order): a reference can only point
    //    back to an object completed before it, or to an enclosing container (left empty).
    let mut stack: Vec<(&Obj, bool)> = vec![(root, false)];
    while let Some((obj, children_done)) = stack.pop() {
        if children_done {
            let mut copy = obj.clone();
            set_targets(&mut copy, targets);
            targets[obj.flag.unwrap().index as usize] = Some(Arc::new(copy));
            continue;
        }
        if is_referenced(obj) {
            stack.push((obj, true));
        }
        let first_child = stack.len();
        for_each_child(obj, |child| stack.push((child, false)));
        stack[first_child..].reverse();
    }
    // 2. Point every reference in the tree at its copy.
    set_targets(root, targets);
}

/// Sets the target of every reference under `root` from `targets` (pre-order).
fn set_targets(root: &mut Obj, targets: &[Option<Arc<Obj>>]) {
    let mut stack: Vec<&mut Obj> = vec![root];
    while let Some(obj) = stack.pop() {
        match &mut obj.value {
            Value::Ref(r) if r.target.is_none() => {
                r.target = targets.get(r.id.index as usize).cloned().flatten();
            }
            Value::Tuple { items, .. } | Value::List(items) | Value::Set(items) | Value::FrozenSet(items) => {
                stack.extend(items.iter_mut())
            }
            Value::Dict(pairs) | Value::FrozenDict(pairs) => {
                for (k, v) in pairs {
                    stack.push(k);
                    stack.push(v);
                }
            }
            Value::Slice(parts) => stack.extend(parts.iter_mut()),
            Value::Code(code) => stack.extend(code.object_fields_mut()),
            _ => {}
        }
    }
}

/// Calls `f` on each direct child, in marshal order.
fn for_each_child<'a>(obj: &'a Obj, mut f: impl FnMut(&'a Obj)) {
    match &obj.value {
        Value::Tuple { items, .. } | Value::List(items) | Value::Set(items) | Value::FrozenSet(items) => {
            items.iter().for_each(f)
        }
        Value::Dict(pairs) | Value::FrozenDict(pairs) => {
            for (k, v) in pairs {
                f(k);
                f(v);
            }
        }
        Value::Slice(parts) => parts.iter().for_each(f),
        Value::Code(code) => code.object_fields().into_iter().for_each(|(_, o)| f(o)),
        _ => {}
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
