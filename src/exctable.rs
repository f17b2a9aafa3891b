//! The 3.11+ `co_exceptiontable` (`Objects/exception_handling_notes.txt`).
//!
//! Each entry is four varints `start, size, target, depth << 1 | lasti`, all in code units.
//! Varints are 6-bit chunks, most significant first, 0x40 = more chunks follow; the first byte
//! of an entry carries 0x80 and no other byte may (the interpreter binary-searches for it).
//! The compiler writes minimal varints, so decode → encode is byte-identical for its output.

pub use crate::linetable::{Table, TableError, TableErrorKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExcEntry {
    pub start: u32,
    /// Exclusive, code units.
    pub end: u32,
    pub target: u32,
    pub depth: u32,
    pub lasti: bool,
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn error(&self, offset: usize, kind: TableErrorKind) -> TableError {
        TableError { table: Table::ExceptionTable, offset, kind }
    }

    fn varint(&mut self, entry_start: bool, expected: &'static str) -> Result<u32, TableError> {
        let start = self.offset;
        let mut value: u64 = 0;
        let mut first = true;
        loop {
            let at = self.offset;
            let byte = *self
                .bytes
                .get(at)
                .ok_or_else(|| self.error(at, TableErrorKind::Truncated { expected }))?;
            let marked = byte & 0x80 != 0;
            if first && entry_start && !marked {
                return Err(self.error(at, TableErrorKind::MissingEntryStart));
            }
            if marked && !(first && entry_start) {
                return Err(self.error(at, TableErrorKind::UnexpectedEntryStart { expected }));
            }
            first = false;
            self.offset += 1;
            value = value << 6 | (byte & 0x3f) as u64;
            if value > u32::MAX as u64 {
                return Err(self.error(start, TableErrorKind::VarintOverflow));
            }
            if byte & 0x40 == 0 {
                return Ok(value as u32);
            }
        }
    }
}

pub fn decode(table: &[u8]) -> Result<Vec<ExcEntry>, TableError> {
    // Every entry takes at least four bytes.
    let mut entries = Vec::with_capacity(table.len() / 4);
    let mut reader = Reader { bytes: table, offset: 0 };
    while reader.offset < table.len() {
        let entry_offset = reader.offset;
        let start = reader.varint(true, "entry start")?;
        let size = reader.varint(false, "entry size")?;
        let target = reader.varint(false, "handler target")?;
        let depth_lasti = reader.varint(false, "depth and lasti")?;
        let end = start
            .checked_add(size)
            .ok_or_else(|| reader.error(entry_offset, TableErrorKind::RangeOverflow))?;
        entries.push(ExcEntry { start, end, target, depth: depth_lasti >> 1, lasti: depth_lasti & 1 != 0 });
    }
    Ok(entries)
}

pub fn encode(entries: &[ExcEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 5);
    encode_into(entries, &mut out);
    out
}

/// As [`encode`], appending to `out`. `end < start` and `depth >= 2^31` wrap (never valid).
pub fn encode_into(entries: &[ExcEntry], out: &mut Vec<u8>) {
    for entry in entries {
        write_varint(out, entry.start, 0x80);
        write_varint(out, entry.end.wrapping_sub(entry.start), 0);
        write_varint(out, entry.target, 0);
        write_varint(out, entry.depth << 1 | entry.lasti as u32, 0);
    }
}

fn write_varint(out: &mut Vec<u8>, value: u32, mut entry_start: u8) {
    // Minimal chunks, most significant first; only the very first byte carries the marker.
    let chunks = (32 - value.leading_zeros()).div_ceil(6).max(1);
    for chunk in (0..chunks).rev() {
        let more = if chunk > 0 { 0x40 } else { 0 };
        out.push(((value >> (chunk * 6)) & 0x3f) as u8 | more | entry_start);
        entry_start = 0;
    }
}
