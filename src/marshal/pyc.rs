//! `.pyc` files: a 16-byte header (PEP 552) followed by the marshalled module code object.

use super::obj::Obj;
use super::read::loads_prefix;
use super::write::dump_into;
use super::{magic_for_version, version_for_magic, ErrorKind, MarshalError, PyVersion, Result};

/// How the pyc is tied to its source (PEP 552 flags word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PycSource {
    /// flags 0: source mtime and size (both mod 2**32).
    Timestamp { mtime: u32, size: u32 },
    /// flags 0b01 / 0b11: SipHash of the source, checked on import when `check_source`.
    Hash { hash: [u8; 8], check_source: bool },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pyc {
    /// The 16-bit magic number (the `\r\n` after it is implied).
    pub magic: u16,
    /// The release the magic number belongs to; decides how `code` is marshalled.
    pub version: PyVersion,
    pub source: PycSource,
    /// The module code object.
    pub code: Obj,
    /// Bytes after the marshalled object, which the importer ignores; kept so that a pyc
    /// round-trips exactly. Leave empty when writing new files.
    pub trailing: Vec<u8>,
}

impl Pyc {
    /// A new pyc for `version` (magic taken from the table).
    pub fn new(version: PyVersion, source: PycSource, code: Obj) -> Result<Pyc> {
        let magic = magic_for_version(version).ok_or(MarshalError::new(0, ErrorKind::UnsupportedVersion(version)))?;
        Ok(Pyc { magic, version, source, code, trailing: Vec::new() })
    }

    /// The PEP 552 flags word.
    pub fn flags(&self) -> u32 {
        match self.source {
            PycSource::Timestamp { .. } => 0,
            PycSource::Hash { check_source, .. } => 1 | (check_source as u32) << 1,
        }
    }
}

pub const HEADER_LEN: usize = 16;

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(data[at..at + 4].try_into().unwrap())
}

pub fn read_pyc(data: &[u8]) -> Result<Pyc> {
    if data.len() < HEADER_LEN {
        return Err(MarshalError::new(data.len(), ErrorKind::Truncated { what: "pyc header" }));
    }
    let magic = u16::from_le_bytes([data[0], data[1]]);
    let tail = [data[2], data[3]];
    let version = match version_for_magic(magic) {
        Some(v) if tail == *b"\r\n" => v,
        _ => return Err(MarshalError::new(0, ErrorKind::BadMagic { magic, tail })),
    };
    let flags = u32_at(data, 4);
    let source = match flags {
        0 => PycSource::Timestamp { mtime: u32_at(data, 8), size: u32_at(data, 12) },
        1 | 3 => PycSource::Hash { hash: data[8..16].try_into().unwrap(), check_source: flags == 3 },
        _ => return Err(MarshalError::new(4, ErrorKind::BadPycFlags(flags))),
    };
    let body = &data[HEADER_LEN..];
    let (code, used) = loads_prefix(body, version).map_err(|e| MarshalError::new(e.offset + HEADER_LEN, e.kind))?;
    Ok(Pyc { magic, version, source, code, trailing: body[used..].to_vec() })
}

pub fn write_pyc(pyc: &Pyc) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(&pyc.magic.to_le_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&pyc.flags().to_le_bytes());
    match pyc.source {
        PycSource::Timestamp { mtime, size } => {
            out.extend_from_slice(&mtime.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
        }
        PycSource::Hash { hash, .. } => out.extend_from_slice(&hash),
    }
    dump_into(&pyc.code, pyc.version, &mut out, true).map_err(|e| MarshalError::new(e.offset, e.kind))?;
    out.extend_from_slice(&pyc.trailing);
    Ok(out)
}
