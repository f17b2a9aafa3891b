//! `Obj` → marshal bytes, mirroring CPython's `w_object`. Reference numbers are recomputed
//! in write order, so an unchanged tree from `loads` comes back byte for byte.

use super::obj::{Code, CodeExtra, Obj, RefId, StrKind, Value};
use super::{tc, ErrorKind, MarshalError, PyVersion, Result, MAX_DEPTH};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Marshal `obj` as Python `version` writes it.
pub fn dumps(obj: &Obj, version: PyVersion) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    dump_into(obj, version, &mut out, true)?;
    Ok(out)
}

/// Marshal `obj` with no sharing at all: every reference written as (a copy of) its target,
/// no `FLAG_REF` anywhere. Bigger than CPython's output, loaded the same by every CPython.
pub fn dumps_without_refs(obj: &Obj, version: PyVersion) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    dump_into(obj, version, &mut out, false)?;
    Ok(out)
}

pub(crate) fn dump_into(obj: &Obj, version: PyVersion, out: &mut Vec<u8>, share: bool) -> Result<()> {
    let marshal_version =
        version.marshal_version().ok_or(MarshalError::new(0, ErrorKind::UnsupportedVersion(version)))?;
    let mut w = Writer { out, version, marshal_version, next_index: 0, written: HashMap::default(), share };
    w.object(obj)
}

/// `RefId`s are already unique; hashing them again is wasted work.
#[derive(Default)]
struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(32) ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
    version: PyVersion,
    marshal_version: u8,
    next_index: u32,
    /// Where each id was written: its index in the reader's reference list.
    written: HashMap<RefId, u32, BuildHasherDefault<IdHasher>>,
    /// false: write no `FLAG_REF` and no `TYPE_REF` (see `dumps_without_refs`).
    share: bool,
}

impl Writer<'_> {
    fn err<T>(&self, kind: ErrorKind) -> Result<T> {
        Err(MarshalError::new(self.out.len(), kind))
    }

    fn i32(&mut self, n: i32) {
        self.out.extend_from_slice(&n.to_le_bytes());
    }

    fn size(&mut self, n: usize, what: &'static str) -> Result<()> {
        match i32::try_from(n) {
            Ok(n) => {
                self.i32(n);
                Ok(())
            }
            Err(_) => self.err(ErrorKind::TooLarge { what }),
        }
    }

    /// Writes the tree with an explicit stack of pending work, so that nesting costs heap,
    /// not call stack.
    fn object<'a>(&mut self, root: &'a Obj) -> Result<()> {
        let mut tasks: Vec<Task<'a>> = vec![Task::Write(root, 1)];
        while let Some(task) = tasks.pop() {
            match task {
                Task::Write(obj, depth) => {
                    if depth > MAX_DEPTH {
                        return self.err(ErrorKind::TooDeep);
                    }
                    self.value(obj, depth, &mut tasks)?;
                }
                Task::Publish(id, index) => {
                    self.written.insert(id, index);
                }
                Task::I32(n) => self.i32(n),
                Task::Null(depth) => {
                    // The dict terminator counts as an object for the depth limit.
                    if depth > MAX_DEPTH {
                        return self.err(ErrorKind::TooDeep);
                    }
                    self.out.push(tc::NULL);
                }
            }
        }
        Ok(())
    }

    /// The type byte, registering the object when flagged. Registration happens now, in
    /// write order, matching the reader; `publish` says whether a `TYPE_REF` may already
    /// point at it (not for the kinds CPython fills in only once complete).
    fn type_byte(&mut self, obj: &Obj, code: u8, publish: bool) -> Option<(RefId, u32)> {
        match obj.flag.filter(|_| self.share) {
            None => {
                self.out.push(code);
                None
            }
            Some(id) => {
                self.out.push(code | tc::FLAG_REF);
                let index = self.next_index;
                self.next_index += 1;
                if id == RefId::ANON {
                    return None;
                }
                if publish {
                    self.written.insert(id, index);
                    None
                } else {
                    Some((id, index))
                }
            }
        }
    }

    /// The type byte of a value CPython never registers (a set flag is kept as is).
    fn plain_byte(&mut self, obj: &Obj, code: u8) {
        self.out.push(if obj.flag.is_some() { code | tc::FLAG_REF } else { code });
    }

    /// Writes `obj`'s type byte and payload; its children are queued on `tasks`.
    fn value<'a>(&mut self, obj: &'a Obj, depth: u32, tasks: &mut Vec<Task<'a>>) -> Result<()> {
        let child = depth + 1;
        // Children are popped last-in first-out: queue them reversed.
        let queue = |tasks: &mut Vec<Task<'a>>, items: &'a [Obj]| {
            tasks.extend(items.iter().rev().map(|item| Task::Write(item, child)));
        };
        let queue_pairs = |tasks: &mut Vec<Task<'a>>, pairs: &'a [(Obj, Obj)]| {
            tasks.push(Task::Null(child));
            for (k, v) in pairs.iter().rev() {
                tasks.push(Task::Write(v, child));
                tasks.push(Task::Write(k, child));
            }
        };
        let publish_later = |tasks: &mut Vec<Task<'a>>, pending: Option<(RefId, u32)>| {
            if let Some((id, index)) = pending {
                tasks.push(Task::Publish(id, index));
            }
        };
        match &obj.value {
            Value::Ref(r) => {
                if let Some(&index) = self.written.get(&r.id) {
                    self.plain_byte(obj, tc::REF);
                    self.out.extend_from_slice(&index.to_le_bytes());
                } else if let Some(target) = &r.target {
                    // The target's own definition was replaced or moved: write it here,
                    // at the reference's depth.
                    tasks.push(Task::Write(target, depth));
                } else {
                    return self.err(ErrorKind::DanglingRef(r.id));
                }
            }
            Value::Tuple { items, long_form } => {
                if items.len() < 256 && !long_form {
                    self.type_byte(obj, tc::SMALL_TUPLE, true);
                    self.out.push(items.len() as u8);
                } else {
                    self.type_byte(obj, tc::TUPLE, true);
                    self.size(items.len(), "tuple")?;
                }
                queue(tasks, items);
            }
            Value::List(items) => {
                self.type_byte(obj, tc::LIST, true);
                self.size(items.len(), "list")?;
                queue(tasks, items);
            }
            Value::Set(items) => {
                self.type_byte(obj, tc::SET, true);
                self.size(items.len(), "set")?;
                queue(tasks, items);
            }
            Value::FrozenSet(items) => {
                // CPython registers an empty frozenset at once, others when complete.
                let pending = self.type_byte(obj, tc::FROZENSET, items.is_empty());
                self.size(items.len(), "frozenset")?;
                publish_later(tasks, pending);
                queue(tasks, items);
            }
            Value::Dict(pairs) => {
                self.type_byte(obj, tc::DICT, true);
                queue_pairs(tasks, pairs);
            }
            Value::FrozenDict(pairs) => {
                self.require(6, "frozendict")?;
                let pending = self.type_byte(obj, tc::FROZENDICT, false);
                publish_later(tasks, pending);
                queue_pairs(tasks, pairs);
            }
            Value::Slice(parts) => {
                self.require(5, "slice")?;
                let pending = self.type_byte(obj, tc::SLICE, false);
                publish_later(tasks, pending);
                queue(tasks, &parts[..]);
            }
            Value::Code(code) => {
                if code.layout() != self.version.code_layout() {
                    return self.err(ErrorKind::CodeLayoutMismatch { layout: code.layout(), version: self.version });
                }
                let pending = self.type_byte(obj, tc::CODE, false);
                publish_later(tasks, pending);
                self.code(code, child, tasks);
            }
            _ => self.leaf(obj)?,
        }
        Ok(())
    }

    /// Values without children.
    fn leaf(&mut self, obj: &Obj) -> Result<()> {
        match &obj.value {
            Value::None => self.plain_byte(obj, tc::NONE),
            Value::False => self.plain_byte(obj, tc::FALSE),
            Value::True => self.plain_byte(obj, tc::TRUE),
            Value::Ellipsis => self.plain_byte(obj, tc::ELLIPSIS),
            Value::StopIteration => self.plain_byte(obj, tc::STOPITER),
            Value::Int(n) => {
                self.type_byte(obj, tc::INT, true);
                self.i32(*n);
            }
            Value::Int64(n) => {
                self.type_byte(obj, tc::INT64, true);
                self.out.extend_from_slice(&n.to_le_bytes());
            }
            Value::Long { negative, digits } => {
                if digits.iter().any(|&d| d > 0x7fff) || digits.last() == Some(&0) {
                    return self.err(ErrorKind::InvalidValue { what: "long digits" });
                }
                let Ok(n) = i32::try_from(digits.len()) else {
                    return self.err(ErrorKind::TooLarge { what: "long" });
                };
                self.type_byte(obj, tc::LONG, true);
                self.i32(if *negative { -n } else { n });
                for d in digits {
                    self.out.extend_from_slice(&d.to_le_bytes());
                }
            }
            Value::Float(bits) => {
                self.type_byte(obj, tc::BINARY_FLOAT, true);
                self.out.extend_from_slice(&bits.to_le_bytes());
            }
            Value::FloatText(text) => {
                self.check_short(text.len(), "float text")?;
                self.type_byte(obj, tc::FLOAT, true);
                self.short_bytes(text);
            }
            Value::Complex(re, im) => {
                self.type_byte(obj, tc::BINARY_COMPLEX, true);
                self.out.extend_from_slice(&re.to_le_bytes());
                self.out.extend_from_slice(&im.to_le_bytes());
            }
            Value::ComplexText(parts) => {
                self.check_short(parts[0].len(), "complex text")?;
                self.check_short(parts[1].len(), "complex text")?;
                self.type_byte(obj, tc::COMPLEX, true);
                self.short_bytes(&parts[0]);
                self.short_bytes(&parts[1]);
            }
            Value::Bytes(data) => {
                self.type_byte(obj, tc::STRING, true);
                self.size(data.len(), "bytes")?;
                self.out.extend_from_slice(data);
            }
            Value::Str { kind, data } => {
                // A short kind that outgrew 255 bytes is written in its long form.
                let kind = match kind {
                    StrKind::ShortAscii if data.len() > 255 => StrKind::Ascii,
                    StrKind::ShortAsciiInterned if data.len() > 255 => StrKind::AsciiInterned,
                    k => *k,
                };
                self.type_byte(obj, kind.type_code(), true);
                if matches!(kind, StrKind::ShortAscii | StrKind::ShortAsciiInterned) {
                    self.short_bytes(data);
                } else {
                    self.size(data.len(), "str")?;
                    self.out.extend_from_slice(data);
                }
            }
            _ => unreachable!("containers are written by Writer::value"),
        }
        Ok(())
    }

    fn require(&self, marshal_version: u8, what: &'static str) -> Result<()> {
        if self.marshal_version < marshal_version {
            return self.err(ErrorKind::NotInVersion { what, version: self.version });
        }
        Ok(())
    }

    fn check_short(&self, len: usize, what: &'static str) -> Result<()> {
        if len > 255 {
            return self.err(ErrorKind::TooLarge { what });
        }
        Ok(())
    }

    fn short_bytes(&mut self, data: &[u8]) {
        self.out.push(data.len() as u8);
        self.out.extend_from_slice(data);
    }

    /// The header integers now; the fields (and firstlineno between them) as tasks.
    fn code<'a>(&mut self, c: &'a Code, child: u32, tasks: &mut Vec<Task<'a>>) {
        self.i32(c.argcount);
        self.i32(c.posonlyargcount);
        self.i32(c.kwonlyargcount);
        if let CodeExtra::Py310 { nlocals, .. } = &c.extra {
            self.i32(*nlocals);
        }
        self.i32(c.stacksize);
        self.i32(c.flags);
        let w = |o: &'a Obj| Task::Write(o, child);
        let in_order: Vec<Task<'a>> = match &c.extra {
            CodeExtra::Py310 { varnames, freevars, cellvars, .. } => vec![
                w(&c.code),
                w(&c.consts),
                w(&c.names),
                w(varnames),
                w(freevars),
                w(cellvars),
                w(&c.filename),
                w(&c.name),
                Task::I32(c.firstlineno),
                w(&c.linetable),
            ],
            CodeExtra::Py311 { localsplusnames, localspluskinds, qualname, exceptiontable } => vec![
                w(&c.code),
                w(&c.consts),
                w(&c.names),
                w(localsplusnames),
                w(localspluskinds),
                w(&c.filename),
                w(&c.name),
                w(qualname),
                Task::I32(c.firstlineno),
                w(&c.linetable),
                w(exceptiontable),
            ],
        };
        tasks.extend(in_order.into_iter().rev());
    }
}

/// Pending work of the writer.
enum Task<'a> {
    /// Write this object at this depth (the root is 1).
    Write(&'a Obj, u32),
    /// A frozenset/frozendict/slice/code object is complete: references may now use it.
    Publish(RefId, u32),
    I32(i32),
    /// A dict's terminator, at this depth.
    Null(u32),
}
