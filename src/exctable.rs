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
            let byte = *self.bytes.get(at).ok_or_else(|| self.error(at, TableErrorKind::Truncated { expected }))?;
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
        let end = start.checked_add(size).ok_or_else(|| reader.error(entry_offset, TableErrorKind::RangeOverflow))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(start: u32, end: u32, target: u32, depth: u32, lasti: bool) -> ExcEntry {
        ExcEntry { start, end, target, depth, lasti }
    }

    #[test]
    fn the_documented_example() {
        // exception_handling_notes.txt: start 20, end 28, target 100, depth 3, no lasti.
        let table = [148, 8, 65, 36, 6];
        assert_eq!(decode(&table).unwrap(), [entry(20, 28, 100, 3, false)]);
        assert_eq!(encode(&decode(&table).unwrap()), table);
    }

    #[test]
    fn lasti_and_multi_chunk_values() {
        let entries = [entry(2, 19, 19, 1, true), entry(4096, 4096 + 70000, (1 << 30) - 1, 300, false)];
        let table = encode(&entries);
        assert_eq!(&table[..4], [0x82, 17, 19, 3]);
        // 4096 = 1·64² → 0x80|0x40|1, 0x40|0, 0; 70000 = 17·64² + 5·64 + 48.
        assert_eq!(&table[4..10], [0xc1, 0x40, 0x00, 0x51, 0x45, 0x30]);
        assert_eq!(decode(&table).unwrap(), entries);
        // Past CPython's 30-bit limit we still round-trip, with a sixth chunk.
        let huge = [entry(u32::MAX - 1, u32::MAX, u32::MAX, u32::MAX >> 1, true)];
        assert_eq!(decode(&encode(&huge)).unwrap(), huge);
    }

    #[test]
    fn malformed_tables_are_errors() {
        let kind = |t: &[u8]| decode(t).unwrap_err().kind;
        assert_eq!(kind(&[0x02, 1, 1, 1]), TableErrorKind::MissingEntryStart);
        assert_eq!(kind(&[0x82, 1, 1]), TableErrorKind::Truncated { expected: "depth and lasti" });
        assert_eq!(kind(&[0x82, 0x81, 1, 1]), TableErrorKind::UnexpectedEntryStart { expected: "entry size" });
        assert_eq!(kind(&[0x82, 0x41]), TableErrorKind::Truncated { expected: "entry size" });
        assert_eq!(kind(&[0xc1, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 1, 1, 1]), TableErrorKind::VarintOverflow);
        let big = encode(&[entry(u32::MAX, u32::MAX, 0, 0, false)]);
        let mut overflowing = big.clone();
        overflowing[6] = 1; // size 0 → 1: start + size overflows
        assert_eq!(kind(&overflowing), TableErrorKind::RangeOverflow);
        assert_eq!(decode(&[]).unwrap(), []);
    }

    fn any_entry() -> impl Strategy<Value = ExcEntry> {
        let value = prop_oneof![0..70u32, 0..5000u32, any::<u32>()];
        (value.clone(), value.clone(), value, 0..(1u32 << 31), any::<bool>()).prop_map(
            |(start, size, target, depth, lasti)| {
                let start = start.min(u32::MAX - size);
                entry(start, start + size, target, depth, lasti)
            },
        )
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_entries_back(entries in prop::collection::vec(any_entry(), 0..20)) {
            prop_assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(entries) = decode(&bytes) {
                prop_assert_eq!(decode(&encode(&entries)).unwrap(), entries);
            }
        }
    }
}
