//! `Obj` → marshal bytes, mirroring CPython's `w_object`. Reference numbers are recomputed
//! in write order, so an unchanged tree from `loads` comes back byte for byte.

use super::obj::{Code, CodeExtra, Obj, RefId, StrKind, Value};
use super::{tc, ErrorKind, MarshalError, PyVersion, Result, MAX_DEPTH};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Marshal `obj` as Python `version` writes it.
pub fn dumps(obj: &Obj, version: PyVersion) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    dump_into(obj, version, &mut out)?;
    Ok(out)
}

pub(crate) fn dump_into(obj: &Obj, version: PyVersion, out: &mut Vec<u8>) -> Result<()> {
    let marshal_version = version
        .marshal_version()
        .ok_or(MarshalError::new(0, ErrorKind::UnsupportedVersion(version)))?;
    let mut w = Writer {
        out,
        version,
        marshal_version,
        depth: 0,
        next_index: 0,
        written: HashMap::default(),
    };
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
    depth: u32,
    next_index: u32,
    /// Where each id was written: its index in the reader's reference list.
    written: HashMap<RefId, u32, BuildHasherDefault<IdHasher>>,
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

    fn object(&mut self, obj: &Obj) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(ErrorKind::TooDeep);
        }
        let result = self.value(obj);
        self.depth -= 1;
        result
    }

    /// The type byte, registering the object when flagged. Registration happens now, in
    /// write order, matching the reader; `publish` says whether a `TYPE_REF` may already
    /// point at it (not for the kinds CPython fills in only once complete).
    fn type_byte(&mut self, obj: &Obj, code: u8, publish: bool) -> Option<(RefId, u32)> {
        match obj.flag {
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
        self.out.push(if obj.flag.is_some() {
            code | tc::FLAG_REF
        } else {
            code
        });
    }

    fn value(&mut self, obj: &Obj) -> Result<()> {
        match &obj.value {
            Value::None => self.plain_byte(obj, tc::NONE),
            Value::False => self.plain_byte(obj, tc::FALSE),
            Value::True => self.plain_byte(obj, tc::TRUE),
            Value::Ellipsis => self.plain_byte(obj, tc::ELLIPSIS),
            Value::StopIteration => self.plain_byte(obj, tc::STOPITER),
            Value::Ref(r) => {
                if let Some(&index) = self.written.get(&r.id) {
                    self.plain_byte(obj, tc::REF);
                    self.out.extend_from_slice(&index.to_le_bytes());
                } else if let Some(target) = &r.target {
                    // The target's own definition was replaced or moved: write it here.
                    // Same depth as the reference, as if it had been written in its place.
                    self.depth -= 1;
                    let result = self.object(target);
                    self.depth += 1;
                    result?;
                } else {
                    return self.err(ErrorKind::DanglingRef(r.id));
                }
            }
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
                    return self.err(ErrorKind::InvalidValue {
                        what: "long digits",
                    });
                }
                self.type_byte(obj, tc::LONG, true);
                let n = i32::try_from(digits.len())
                    .or(self.err(ErrorKind::TooLarge { what: "long" }))?;
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
            Value::Tuple { items, long_form } => {
                if items.len() < 256 && !long_form {
                    self.type_byte(obj, tc::SMALL_TUPLE, true);
                    self.out.push(items.len() as u8);
                } else {
                    self.type_byte(obj, tc::TUPLE, true);
                    self.size(items.len(), "tuple")?;
                }
                self.objects(items)?;
            }
            Value::List(items) => {
                self.type_byte(obj, tc::LIST, true);
                self.size(items.len(), "list")?;
                self.objects(items)?;
            }
            Value::Set(items) => {
                self.type_byte(obj, tc::SET, true);
                self.size(items.len(), "set")?;
                self.objects(items)?;
            }
            Value::FrozenSet(items) => {
                // CPython registers an empty frozenset at once, others when complete.
                let pending = self.type_byte(obj, tc::FROZENSET, items.is_empty());
                self.size(items.len(), "frozenset")?;
                self.objects(items)?;
                self.publish(pending);
            }
            Value::Dict(pairs) => {
                self.type_byte(obj, tc::DICT, true);
                self.pairs(pairs)?;
            }
            Value::FrozenDict(pairs) => {
                self.require(6, "frozendict")?;
                let pending = self.type_byte(obj, tc::FROZENDICT, false);
                self.pairs(pairs)?;
                self.publish(pending);
            }
            Value::Slice(parts) => {
                self.require(5, "slice")?;
                let pending = self.type_byte(obj, tc::SLICE, false);
                self.objects(&parts[..])?;
                self.publish(pending);
            }
            Value::Code(code) => {
                if code.layout() != self.version.code_layout() {
                    return self.err(ErrorKind::CodeLayoutMismatch {
                        layout: code.layout(),
                        version: self.version,
                    });
                }
                let pending = self.type_byte(obj, tc::CODE, false);
                self.code(code)?;
                self.publish(pending);
            }
        }
        Ok(())
    }

    fn require(&self, marshal_version: u8, what: &'static str) -> Result<()> {
        if self.marshal_version < marshal_version {
            return self.err(ErrorKind::NotInVersion {
                what,
                version: self.version,
            });
        }
        Ok(())
    }

    fn publish(&mut self, pending: Option<(RefId, u32)>) {
        if let Some((id, index)) = pending {
            self.written.insert(id, index);
        }
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

    fn objects(&mut self, items: &[Obj]) -> Result<()> {
        for item in items {
            self.object(item)?;
        }
        Ok(())
    }

    fn pairs(&mut self, pairs: &[(Obj, Obj)]) -> Result<()> {
        for (k, v) in pairs {
            self.object(k)?;
            self.object(v)?;
        }
        // The NULL terminator counts as one more object for the depth limit.
        if self.depth + 1 > MAX_DEPTH {
            return self.err(ErrorKind::TooDeep);
        }
        self.out.push(tc::NULL);
        Ok(())
    }

    fn code(&mut self, c: &Code) -> Result<()> {
        self.i32(c.argcount);
        self.i32(c.posonlyargcount);
        self.i32(c.kwonlyargcount);
        if let CodeExtra::Py310 { nlocals, .. } = &c.extra {
            self.i32(*nlocals);
        }
        self.i32(c.stacksize);
        self.i32(c.flags);
        self.object(&c.code)?;
        self.object(&c.consts)?;
        self.object(&c.names)?;
        match &c.extra {
            CodeExtra::Py310 {
                varnames,
                freevars,
                cellvars,
                ..
            } => {
                self.object(varnames)?;
                self.object(freevars)?;
                self.object(cellvars)?;
                self.object(&c.filename)?;
                self.object(&c.name)?;
                self.i32(c.firstlineno);
                self.object(&c.linetable)?;
            }
            CodeExtra::Py311 {
                localsplusnames,
                localspluskinds,
                qualname,
                exceptiontable,
            } => {
                self.object(localsplusnames)?;
                self.object(localspluskinds)?;
                self.object(&c.filename)?;
                self.object(&c.name)?;
                self.object(qualname)?;
                self.i32(c.firstlineno);
                self.object(&c.linetable)?;
                self.object(exceptiontable)?;
            }
        }
        Ok(())
    }
}
