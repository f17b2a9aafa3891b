//! Position side tables: the 3.10 `co_linetable` and the 3.11+ PEP 657 location table.
//!
//! Both are decoded to one [`Position`] per code unit and encoded back exactly the way
//! CPython's compiler writes them, so an unmodified code object re-encodes to identical bytes.
//!
//! 3.10 (`Python/compile.c`, `assemble_line_range`): (byte delta, signed line delta) pairs; line
//! delta -128 means "no line" and leaves the running line alone. A range starts wherever the line
//! changes; a line jump beyond ±127 is first written as (0, ±127) pairs, a range longer than 254
//! bytes is cut into (254, delta) + (254, 0)... pieces.
//!
//! 3.11+ (`Objects/locations.md`; writer in `compile.c` (3.11) / `assemble.c` (3.12+)): entries of
//! at most 8 code units. 3.11 writes one run of entries per instruction; 3.12+ merges consecutive
//! instructions with the same location first; 3.14+ writes negative lines other than -1 as lines
//! where earlier versions write "no location". [`LocationFormat`] does not tell these apart, so
//! [`TableWriter`] does (see [`TableWriter::for_version`]).

use crate::tables::{LocationFormat, OpTable};
use std::fmt;

/// Source position of one code unit. `None` is what CPython reports as `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Position {
    pub line: Option<i32>,
    pub end_line: Option<i32>,
    pub col: Option<i32>,
    pub end_col: Option<i32>,
}

impl Position {
    /// A line without columns (all 3.10 has, and the 3.11+ "no column" form).
    pub fn line_only(line: i32) -> Position {
        Position { line: Some(line), end_line: Some(line), col: None, end_col: None }
    }
}

/// Which side table a [`TableError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    LineTable,
    ExceptionTable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableErrorKind {
    /// The table ended in the middle of an entry; `expected` names the missing field.
    Truncated { expected: &'static str },
    /// An entry must start here, but the byte lacks the entry-start bit (0x80).
    MissingEntryStart,
    /// A byte inside an entry has the entry-start bit (0x80) set; `expected` names the field.
    UnexpectedEntryStart { expected: &'static str },
    /// A varint does not fit in 32 bits.
    VarintOverflow,
    /// 3.10: a byte delta that does not end on a code unit boundary.
    OddByteDelta,
    /// The table describes more code units than the code object has.
    PastEndOfCode { units: usize },
    /// Exception table: an entry's end (start + size) does not fit in 32 bits.
    RangeOverflow,
}

/// Malformed or truncated side table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableError {
    pub table: Table,
    /// Byte offset in the table where the problem was found.
    pub offset: usize,
    pub kind: TableErrorKind,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = match self.table {
            Table::LineTable => "co_linetable",
            Table::ExceptionTable => "co_exceptiontable",
        };
        write!(f, "{table} byte {}: ", self.offset)?;
        match self.kind {
            TableErrorKind::Truncated { expected } => write!(f, "table ends, expected {expected}"),
            TableErrorKind::MissingEntryStart => {
                write!(f, "expected an entry start (bit 0x80 set)")
            }
            TableErrorKind::UnexpectedEntryStart { expected } => {
                write!(f, "entry-start bit 0x80 set, expected {expected}")
            }
            TableErrorKind::VarintOverflow => write!(f, "varint longer than 32 bits"),
            TableErrorKind::OddByteDelta => write!(f, "byte delta is odd (not whole code units)"),
            TableErrorKind::PastEndOfCode { units } => {
                write!(f, "table covers more than the {units} code units of the code")
            }
            TableErrorKind::RangeOverflow => write!(f, "entry end overflows 32 bits"),
        }
    }
}

impl std::error::Error for TableError {}

/// Exactly how a CPython version writes its position table; each variant is named for the
/// first version that writes that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableWriter {
    /// 3.10 `co_linetable`.
    Python310,
    /// 3.11: PEP 657 entries, one run per instruction, never merged across instructions.
    Python311,
    /// 3.12, 3.13: consecutive instructions with equal positions merged into one run; any
    /// negative line is written as "no location".
    Python312,
    /// 3.14+: as 3.12, but only line -1 means "no location"; other negative lines (possible
    /// from hand-built ASTs) are written as lines.
    Python314,
}

impl TableWriter {
    pub fn for_version(major: u8, minor: u8) -> Option<TableWriter> {
        match (major, minor) {
            (3, 10) => Some(TableWriter::Python310),
            (3, 11) => Some(TableWriter::Python311),
            (3, 12 | 13) => Some(TableWriter::Python312),
            (3, m) if m >= 14 => Some(TableWriter::Python314),
            _ => None,
        }
    }

    pub fn for_table(table: &OpTable) -> Option<TableWriter> {
        TableWriter::for_version(table.version.0, table.version.1)
    }

    pub fn format(self) -> LocationFormat {
        match self {
            TableWriter::Python310 => LocationFormat::LineTable310,
            _ => LocationFormat::Pep657,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// One run of code units sharing a position, as stored in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocationEntry {
    /// Code units covered (3.10 tables may hold zero-length entries).
    pub units: usize,
    pub position: Position,
}

/// Iterates over the entries of a position table without allocating. Stops after the first
/// error.
pub struct LocationEntries<'a> {
    format: LocationFormat,
    bytes: &'a [u8],
    offset: usize,
    line: i32,
    failed: bool,
}

impl<'a> LocationEntries<'a> {
    pub fn new(format: LocationFormat, table: &'a [u8], first_line: i32) -> Self {
        LocationEntries { format, bytes: table, offset: 0, line: first_line, failed: false }
    }

    fn error(&self, offset: usize, kind: TableErrorKind) -> TableError {
        TableError { table: Table::LineTable, offset, kind }
    }

    fn next_310(&mut self) -> Result<LocationEntry, TableError> {
        let at = self.offset;
        let pair = self
            .bytes
            .get(at..at + 2)
            .ok_or_else(|| self.error(self.bytes.len(), TableErrorKind::Truncated { expected: "line delta" }))?;
        let (byte_delta, line_delta) = (pair[0] as usize, pair[1] as i8);
        if byte_delta % 2 != 0 {
            return Err(self.error(at, TableErrorKind::OddByteDelta));
        }
        self.offset += 2;
        // -128 = no line; the running line stays, later deltas are relative to it.
        let line = if line_delta == -128 {
            None
        } else {
            self.line = self.line.wrapping_add(line_delta as i32);
            // co_lines() reports any negative line as None.
            (self.line >= 0).then_some(self.line)
        };
        let position = Position { line, ..Position::default() };
        Ok(LocationEntry { units: byte_delta / 2, position })
    }

    /// A payload byte: bit 7 is reserved for entry starts.
    fn payload_byte(&mut self, expected: &'static str) -> Result<u8, TableError> {
        let at = self.offset;
        let byte = *self.bytes.get(at).ok_or_else(|| self.error(at, TableErrorKind::Truncated { expected }))?;
        if byte & 0x80 != 0 {
            return Err(self.error(at, TableErrorKind::UnexpectedEntryStart { expected }));
        }
        self.offset += 1;
        Ok(byte)
    }

    /// 6-bit chunks, least significant first, bit 6 = more chunks follow.
    fn varint(&mut self, expected: &'static str) -> Result<u32, TableError> {
        let start = self.offset;
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.payload_byte(expected)?;
            value |= ((byte & 0x3f) as u64) << shift;
            if value > u32::MAX as u64 {
                return Err(self.error(start, TableErrorKind::VarintOverflow));
            }
            if byte & 0x40 == 0 {
                return Ok(value as u32);
            }
            shift += 6;
            if shift > 30 {
                return Err(self.error(start, TableErrorKind::VarintOverflow));
            }
        }
    }

    fn svarint(&mut self, expected: &'static str) -> Result<i32, TableError> {
        let raw = self.varint(expected)?;
        let magnitude = (raw >> 1) as i32;
        Ok(if raw & 1 != 0 { magnitude.wrapping_neg() } else { magnitude })
    }

    fn next_pep657(&mut self) -> Result<LocationEntry, TableError> {
        let at = self.offset;
        let header = self.bytes[at];
        if header & 0x80 == 0 {
            return Err(self.error(at, TableErrorKind::MissingEntryStart));
        }
        self.offset += 1;
        let units = (header & 7) as usize + 1;
        let code = (header >> 3) & 15;
        // CPython keeps -1 for "none" and shows exactly -1 as None (`_source_offset_converter`);
        // the arithmetic wraps like its C ints.
        let (line, end_line, col, end_col);
        match code {
            0..=9 => {
                let second = self.payload_byte("short-form columns")? as i32;
                line = self.line;
                end_line = line;
                col = (code as i32) << 3 | second >> 4;
                end_col = col + (second & 15);
            }
            10..=12 => {
                self.line = self.line.wrapping_add(code as i32 - 10);
                line = self.line;
                end_line = line;
                col = self.payload_byte("one-line column")? as i32;
                end_col = self.payload_byte("one-line end column")? as i32;
            }
            13 => {
                self.line = self.line.wrapping_add(self.svarint("no-column line delta")?);
                line = self.line;
                end_line = line;
                col = -1;
                end_col = -1;
            }
            14 => {
                self.line = self.line.wrapping_add(self.svarint("long-form line delta")?);
                line = self.line;
                end_line = line.wrapping_add(self.varint("long-form end line delta")? as i32);
                col = (self.varint("long-form column")? as i32).wrapping_sub(1);
                end_col = (self.varint("long-form end column")? as i32).wrapping_sub(1);
            }
            _ => {
                line = -1;
                end_line = -1;
                col = -1;
                end_col = -1;
            }
        }
        let shown = |v: i32| (v != -1).then_some(v);
        let position =
            Position { line: shown(line), end_line: shown(end_line), col: shown(col), end_col: shown(end_col) };
        Ok(LocationEntry { units, position })
    }
}

impl Iterator for LocationEntries<'_> {
    type Item = Result<LocationEntry, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.bytes.len() {
            return None;
        }
        let entry = match self.format {
            LocationFormat::LineTable310 => self.next_310(),
            LocationFormat::Pep657 => self.next_pep657(),
        };
        self.failed = entry.is_err();
        Some(entry)
    }
}

/// One position per code unit (2-byte unit) of co_code, `units` long.
///
/// Units the table does not reach get `Position::default()` (CPython reports no line for
/// them). A table reaching past `units` is an error. 3.10 fills only `line`.
pub fn decode_positions(
    format: LocationFormat,
    table: &[u8],
    first_line: i32,
    units: usize,
) -> Result<Vec<Position>, TableError> {
    let mut reader = PositionReader::new(format, table, first_line, units);
    let mut positions = Vec::with_capacity(units);
    while positions.len() < units {
        let (position, run) = reader.peek()?;
        let run = run.min(units - positions.len());
        positions.resize(positions.len() + run, position);
        reader.skip(run);
    }
    reader.finish()?;
    Ok(positions)
}

/// Reads a position table front to back a stretch of code units at a time, so a decoder
/// needs no per-unit vector; [`decode_positions`] is the collected form.
pub struct PositionReader<'a> {
    entries: LocationEntries<'a>,
    units: usize,
    /// Code units covered by the entries read so far.
    covered: usize,
    /// The entry being read out, and how many of its units are not taken yet.
    current: Position,
    left: usize,
}

impl<'a> PositionReader<'a> {
    pub fn new(format: LocationFormat, table: &'a [u8], first_line: i32, units: usize) -> Self {
        PositionReader {
            entries: LocationEntries::new(format, table, first_line),
            units,
            covered: 0,
            current: Position::default(),
            left: 0,
        }
    }

    /// The position of the next code unit and how many units from it on the current entry
    /// still covers (unbounded once the table has ended: the rest has no position).
    pub fn peek(&mut self) -> Result<(Position, usize), TableError> {
        while self.left == 0 {
            let offset = self.entries.offset;
            match self.entries.next() {
                None => return Ok((Position::default(), usize::MAX)),
                Some(entry) => {
                    let entry = entry?;
                    if entry.units > self.units - self.covered {
                        let units = self.units;
                        return Err(self.entries.error(offset, TableErrorKind::PastEndOfCode { units }));
                    }
                    self.covered += entry.units;
                    self.current = entry.position;
                    self.left = entry.units;
                }
            }
        }
        Ok((self.current, self.left))
    }

    /// Take `n` units, at most what the last `peek` offered.
    pub fn skip(&mut self, n: usize) {
        self.left = self.left.saturating_sub(n);
    }

    /// Check the rest of the table: a malformed or overlong tail is an error even past the
    /// units anyone asked about.
    pub fn finish(mut self) -> Result<(), TableError> {
        self.left = 0;
        loop {
            let offset = self.entries.offset;
            let Some(entry) = self.entries.next() else {
                return Ok(());
            };
            let entry = entry?;
            if entry.units > self.units - self.covered {
                return Err(self.entries.error(offset, TableErrorKind::PastEndOfCode { units: self.units }));
            }
            self.covered += entry.units;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Encode per-code-unit positions the way `format`'s compiler does. For
/// `LocationFormat::Pep657` this is the 3.14+ writer, which gives the same bytes as 3.12 and
/// 3.13 for every position list that has no negative line but -1 (all their tables decode to
/// such lists). 3.11 writes differently (one run per instruction): use
/// [`encode_positions_as`] with [`TableWriter::for_version`] to be byte-identical everywhere.
///
/// `starts[i]` is true when code unit i begins an instruction (its first EXTENDED_ARG).
pub fn encode_positions(format: LocationFormat, first_line: i32, positions: &[Position], starts: &[bool]) -> Vec<u8> {
    let writer = match format {
        LocationFormat::LineTable310 => TableWriter::Python310,
        LocationFormat::Pep657 => TableWriter::Python314,
    };
    encode_positions_as(writer, first_line, positions, starts)
}

/// Encode per-code-unit positions exactly as `writer`'s CPython version does.
pub fn encode_positions_as(writer: TableWriter, first_line: i32, positions: &[Position], starts: &[bool]) -> Vec<u8> {
    let mut out = Vec::with_capacity(positions.len() / 2 + 8);
    encode_positions_into(writer, first_line, positions, starts, &mut out);
    out
}

/// As [`encode_positions_as`], appending to `out`.
pub fn encode_positions_into(
    writer: TableWriter,
    first_line: i32,
    positions: &[Position],
    starts: &[bool],
    out: &mut Vec<u8>,
) {
    let mut w = PositionWriter::new(writer, first_line, out);
    for (i, position) in positions.iter().enumerate() {
        w.push(position, 1, starts.get(i).copied().unwrap_or(false));
    }
    w.finish();
}

/// The 3.10 compiler's view of a line: -1 for none, and it treats every negative line as none.
fn line_310(position: &Position) -> i32 {
    match position.line {
        Some(line) if line >= 0 => line,
        _ => -1,
    }
}

const NONE: i32 = -1;

/// Writes a position table from runs of code units (an encoder pushes one run per
/// instruction, not one position per unit). Equal neighbouring positions are merged into one
/// run first, which is what the compilers do: 3.10 merges whatever has the same line, 3.11
/// never merges across instructions, 3.12+ merge equal positions.
pub struct PositionWriter<'a> {
    out: &'a mut Vec<u8>,
    writer: TableWriter,
    /// 3.11-3.13 test `lineno < 0` for "no location", 3.14+ `lineno == -1`.
    negative_lines_are_none: bool,
    /// PEP 657: the assembler's `a_lineno`; 3.10: the last line written.
    line: i32,
    /// The run not yet written (3.10: only its line counts, starting at co_firstlineno).
    run: Position,
    run_line: i32,
    run_units: usize,
}

impl<'a> PositionWriter<'a> {
    pub fn new(writer: TableWriter, first_line: i32, out: &'a mut Vec<u8>) -> Self {
        PositionWriter {
            out,
            writer,
            negative_lines_are_none: writer != TableWriter::Python314,
            line: first_line,
            run: Position::default(),
            run_line: first_line,
            run_units: 0,
        }
    }

    /// `units` code units at `position`; `instruction_start`: they begin an instruction.
    #[inline]
    pub fn push(&mut self, position: &Position, units: usize, instruction_start: bool) {
        let same = match self.writer {
            TableWriter::Python310 => line_310(position) == self.run_line,
            TableWriter::Python311 => !instruction_start && *position == self.run,
            TableWriter::Python312 | TableWriter::Python314 => *position == self.run,
        };
        if same {
            self.run_units += units;
        } else {
            self.flush();
            self.run = *position;
            self.run_line = line_310(position);
            self.run_units = units;
        }
    }

    pub fn finish(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        let units = std::mem::take(&mut self.run_units);
        if units == 0 {
            // 3.10: the first instruction's line differs from co_firstlineno: nothing yet.
            return;
        }
        if self.writer == TableWriter::Python310 {
            self.write_310(self.run_line, units);
        } else {
            let run = self.run;
            self.write_run(&run, units);
        }
    }

    /// Mirrors `assemble_line_range`: one range of `units` at `current` (-1: no line).
    fn write_310(&mut self, current: i32, units: usize) {
        let out = &mut *self.out;
        let mut byte_delta = units * 2;
        let mut line_delta;
        if current < 0 {
            line_delta = -128;
        } else {
            line_delta = current.wrapping_sub(self.line);
            self.line = current;
            while line_delta > 127 {
                out.extend_from_slice(&[0, 127]);
                line_delta -= 127;
            }
            while line_delta < -127 {
                out.extend_from_slice(&[0, (-127i8) as u8]);
                line_delta += 127;
            }
        }
        while byte_delta > 254 {
            out.extend_from_slice(&[254, line_delta as i8 as u8]);
            line_delta = if current < 0 { -128 } else { 0 };
            byte_delta -= 254;
        }
        out.extend_from_slice(&[byte_delta as u8, line_delta as i8 as u8]);
    }

    /// Mirrors `write_location_info_entry` in CPython's assembler, 8 units at a time.
    fn write_run(&mut self, position: &Position, mut units: usize) {
        while units > 8 {
            self.write_entry(position, 8);
            units -= 8;
        }
        self.write_entry(position, units);
    }

    fn header(&mut self, code: u8, units: usize) {
        debug_assert!((1..=8).contains(&units));
        self.out.push(0x80 | code << 3 | (units - 1) as u8);
    }

    fn varint(&mut self, mut value: u32) {
        while value >= 64 {
            self.out.push(0x40 | (value & 63) as u8);
            value >>= 6;
        }
        self.out.push(value as u8);
    }

    fn svarint(&mut self, value: i32) {
        let raw = if value < 0 { (value as u32).wrapping_neg() << 1 | 1 } else { (value as u32) << 1 };
        self.varint(raw);
    }

    fn write_entry(&mut self, position: &Position, units: usize) {
        let line = position.line.unwrap_or(NONE);
        if line == NONE || (line < 0 && self.negative_lines_are_none) {
            self.header(15, units);
            return;
        }
        let end_line = position.end_line.unwrap_or(NONE);
        // The compiler never has columns below -1; anything negative means "none".
        let col = position.col.unwrap_or(NONE).max(NONE);
        let end_col = position.end_col.unwrap_or(NONE).max(NONE);
        let line_delta = line.wrapping_sub(self.line);
        if col < 0 || end_col < 0 {
            if end_line == line || end_line == NONE {
                self.header(13, units);
                self.svarint(line_delta);
                self.line = line;
                return;
            }
        } else if end_line == line {
            if line_delta == 0 && col < 80 && end_col >= col && end_col - col < 16 {
                self.header((col >> 3) as u8, units);
                self.out.push(((col & 7) << 4 | (end_col - col)) as u8);
                return;
            }
            if (0..3).contains(&line_delta) && col < 128 && end_col < 128 {
                self.header(10 + line_delta as u8, units);
                self.out.push(col as u8);
                self.out.push(end_col as u8);
                self.line = line;
                return;
            }
        }
        self.header(14, units);
        self.svarint(line_delta);
        self.varint(end_line.wrapping_sub(line) as u32);
        self.varint(col.wrapping_add(1) as u32);
        self.varint(end_col.wrapping_add(1) as u32);
        self.line = line;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PEP: LocationFormat = LocationFormat::Pep657;
    const L310: LocationFormat = LocationFormat::LineTable310;

    fn pos(line: i32, end_line: i32, col: i32, end_col: i32) -> Position {
        let o = |v: i32| (v != -1).then_some(v);
        Position { line: o(line), end_line: o(end_line), col: o(col), end_col: o(end_col) }
    }

    fn line(l: Option<i32>) -> Position {
        Position { line: l, ..Position::default() }
    }

    fn roundtrip(writer: TableWriter, first_line: i32, table: &[u8], starts: &[bool], expected: &[Position]) {
        let decoded = decode_positions(writer.format(), table, first_line, expected.len()).unwrap();
        assert_eq!(decoded, expected);
        assert_eq!(encode_positions_as(writer, first_line, &decoded, starts), table);
    }

    #[test]
    fn module_resume_is_line_zero_in_long_form() {
        // `compile("x=1\n", "m", "exec")` on 3.12: RESUME sits at (0, 1, 0, 0), a line delta
        // of -1 from co_firstlineno 1; the merged RETURN_CONST run is one 2-unit short entry.
        let table = [0xf0, 0x03, 0x01, 0x01, 0x01, 0xd8, 0x02, 0x03, 0x81, 0x01];
        let expected = [pos(0, 1, 0, 0), pos(1, 1, 2, 3), pos(1, 1, 0, 1), pos(1, 1, 0, 1)];
        roundtrip(TableWriter::Python312, 1, &table, &[true; 4], &expected);
    }

    #[test]
    fn python_3_11_writes_one_run_per_instruction() {
        // The same module on 3.11: LOAD_CONST, RETURN_VALUE... each get their own entry.
        let table = [0xf0, 0x03, 0x01, 0x01, 0x01, 0xd8, 0x02, 0x03, 0x80, 0x01, 0x80, 0x01, 0x80, 0x01];
        let expected = [pos(0, 1, 0, 0), pos(1, 1, 2, 3), pos(1, 1, 0, 1), pos(1, 1, 0, 1), pos(1, 1, 0, 1)];
        roundtrip(TableWriter::Python311, 1, &table, &[true; 5], &expected);
        // The 3.12+ writer merges the last three.
        let merged = encode_positions_as(TableWriter::Python312, 1, &expected, &[true; 5]);
        assert_eq!(merged, [0xf0, 0x03, 0x01, 0x01, 0x01, 0xd8, 0x02, 0x03, 0x82, 0x01]);
        assert_eq!(encode_positions(PEP, 1, &expected, &[true; 5]), merged);
    }

    #[test]
    fn python_3_14_writes_negative_lines() {
        // A hand-built AST call at line -5, columns 1..3, on 3.14: a real long-form line.
        // 3.11-3.13 write every negative line as "no location".
        let table = [0xf0, 0x03, 0x01, 0x01, 0x01, 0xf7, 0x0b, 0x00, 0x02, 0x04, 0x80, 0x12];
        let mut expected = vec![pos(-5, -5, 1, 3); 10];
        expected[0] = pos(0, 1, 0, 0);
        let mut starts = [true; 10];
        starts[2..5].fill(false);
        roundtrip(TableWriter::Python314, 1, &table, &starts, &expected);
        assert_eq!(encode_positions(PEP, 1, &expected, &starts), table);
        let older = encode_positions_as(TableWriter::Python312, 1, &expected, &starts);
        assert_eq!(older, [0xf0, 0x03, 0x01, 0x01, 0x01, 0xf8 | 7, 0xf8]);
    }

    #[test]
    fn short_form() {
        // Code 1 (columns 8..15), 3 units, column 8 + 3, end column 11 + 1.
        let table = [0x80 | 1 << 3 | 2, 0x31];
        roundtrip(TableWriter::Python312, 5, &table, &[true, false, false], &[pos(5, 5, 11, 12); 3]);
        // The last short code: columns 72..79.
        roundtrip(TableWriter::Python312, 5, &[0x80 | 9 << 3, 0x7f], &[true], &[pos(5, 5, 79, 94)]);
    }

    #[test]
    fn one_line_form_for_columns_past_the_short_form() {
        // Column 80 (no short code), column span 16, end before start, and line deltas 0..2.
        let cases = [
            (pos(5, 5, 80, 81), vec![0x80 | 10 << 3, 80, 81]),
            (pos(5, 5, 0, 16), vec![0x80 | 10 << 3, 0, 16]),
            (pos(5, 5, 9, 3), vec![0x80 | 10 << 3, 9, 3]),
            (pos(6, 6, 1, 2), vec![0x80 | 11 << 3, 1, 2]),
            (pos(7, 7, 127, 127), vec![0x80 | 12 << 3, 127, 127]),
        ];
        for (p, table) in cases {
            roundtrip(TableWriter::Python312, 5, &table, &[true], &[p]);
        }
    }

    #[test]
    fn no_column_form_and_negative_deltas() {
        // svarint(-3) = 7, svarint(+40) = 80 = 0x50 0x01.
        roundtrip(TableWriter::Python312, 10, &[0x80 | 13 << 3, 7], &[true], &[pos(7, 7, -1, -1)]);
        roundtrip(TableWriter::Python312, 10, &[0x80 | 13 << 3, 0x50, 0x01], &[true], &[pos(50, 50, -1, -1)]);
    }

    #[test]
    fn long_form_multi_line_and_wide_columns() {
        // Line +2 (4), end line +5, column 200 (+1 = 201 = 0x49 0x03), end column 0 (+1).
        let table = [0x80 | 14 << 3 | 1, 4, 5, 0x49, 0x03, 1];
        roundtrip(TableWriter::Python312, 1, &table, &[true, false], &[pos(3, 8, 200, 0); 2]);
        // Multi-line span without columns: stored columns 0 mean None.
        roundtrip(TableWriter::Python312, 1, &[0x80 | 14 << 3, 0, 2, 0, 0], &[true], &[pos(1, 3, -1, -1)]);
        // Column 128 on one line with a delta of 3: neither short nor one-line.
        let table = [0x80 | 14 << 3, 6, 0, 0x41, 0x02, 0x42, 0x02];
        roundtrip(TableWriter::Python312, 1, &table, &[true], &[pos(4, 4, 128, 129)]);
    }

    #[test]
    fn no_location_keeps_the_running_line() {
        // None, then a no-column entry whose delta is still relative to the last real line.
        let table = [0x80 | 13 << 3, 2, 0x80 | 15 << 3 | 1, 0x80 | 13 << 3, 2];
        let expected = [pos(2, 2, -1, -1), Position::default(), Position::default(), pos(3, 3, -1, -1)];
        roundtrip(TableWriter::Python312, 1, &table, &[true; 4], &expected);
    }

    #[test]
    fn runs_longer_than_eight_units_are_cut() {
        // 11 units with one location: 8 + 3; per-instruction cuts first at the instruction.
        let p = pos(1, 1, 0, 4);
        let mut starts = [false; 11];
        starts[0] = true;
        let merged = encode_positions_as(TableWriter::Python312, 1, &[p; 11], &starts);
        assert_eq!(merged, [0x87, 0x04, 0x82, 0x04]);
        starts[5] = true;
        let per_instruction = encode_positions_as(TableWriter::Python311, 1, &[p; 11], &starts);
        assert_eq!(per_instruction, [0x84, 0x04, 0x85, 0x04]);
        assert_eq!(decode_positions(PEP, &per_instruction, 1, 11).unwrap(), [p; 11]);
    }

    #[test]
    fn line_table_310() {
        // first line 1: lines 1,1,2,2,-,2 → (4, 0) (4, +1) (2, none) (2, 0).
        let lines = [Some(1), Some(1), Some(2), Some(2), None, Some(2)].map(line);
        roundtrip(TableWriter::Python310, 1, &[4, 0, 4, 1, 2, 0x80, 2, 0], &[true; 6], &lines);
        // A first instruction off co_firstlineno writes no zero-length entry.
        roundtrip(TableWriter::Python310, 1, &[2, 4], &[true], &[line(Some(5))]);
    }

    #[test]
    fn line_table_310_big_jumps_and_long_ranges() {
        // +300 lines: (0, 127) (0, 127) then the range with the remaining 46.
        roundtrip(TableWriter::Python310, 1, &[0, 127, 0, 127, 2, 46], &[true], &[line(Some(301))]);
        // Back down by 200: (0, -127) (2, -73).
        let table = [2, 0, 0, 0x81, 2, (-73i8) as u8];
        roundtrip(TableWriter::Python310, 201, &table, &[true; 2], &[line(Some(201)), line(Some(1))]);
        // 150 units on one line = 300 bytes: (254, 0) (46, 0); without a line: -128 on both.
        roundtrip(TableWriter::Python310, 1, &[254, 0, 46, 0], &[true; 150], &[line(Some(1)); 150]);
        roundtrip(TableWriter::Python310, 1, &[254, 0x80, 46, 0x80], &[true; 150], &[line(None); 150]);
    }

    #[test]
    fn short_tables_leave_the_rest_without_position() {
        assert_eq!(decode_positions(PEP, &[0x80, 0x00], 1, 3).unwrap()[1..], [Position::default(); 2]);
        assert_eq!(decode_positions(L310, &[], 1, 2).unwrap(), [Position::default(); 2]);
    }

    #[test]
    fn malformed_tables_are_errors() {
        let err = |f, t: &[u8], units| decode_positions(f, t, 1, units).unwrap_err().kind;
        assert_eq!(err(L310, &[2], 4), TableErrorKind::Truncated { expected: "line delta" });
        assert_eq!(err(L310, &[3, 0], 4), TableErrorKind::OddByteDelta);
        assert_eq!(err(L310, &[10, 0], 4), TableErrorKind::PastEndOfCode { units: 4 });
        assert_eq!(err(PEP, &[0x00], 4), TableErrorKind::MissingEntryStart);
        assert_eq!(err(PEP, &[0x80], 4), TableErrorKind::Truncated { expected: "short-form columns" });
        assert_eq!(err(PEP, &[0x80, 0x80], 4), TableErrorKind::UnexpectedEntryStart { expected: "short-form columns" });
        assert_eq!(err(PEP, &[0xf0, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x01], 4), TableErrorKind::VarintOverflow);
        assert_eq!(err(PEP, &[0xf8, 0xf8], 1), TableErrorKind::PastEndOfCode { units: 1 });
        let e = decode_positions(PEP, &[0xf0, 0x02], 1, 4).unwrap_err();
        assert_eq!(e.to_string(), "co_linetable byte 2: table ends, expected long-form end line delta");
    }

    /// What `decode(encode(p))` gives: the compiler's writer folds a few inputs together.
    fn after_roundtrip(p: Position, writer: TableWriter) -> Position {
        let kept = |l: i32| l >= 0 || (writer == TableWriter::Python314 && l != -1);
        let Some(l) = p.line.filter(|&l| kept(l)) else {
            return Position::default();
        };
        if writer == TableWriter::Python310 {
            return Position { line: Some(l), ..Position::default() };
        }
        let clean = |v: Option<i32>| v.filter(|&v| v >= 0);
        let end_line = p.end_line.filter(|&e| e != -1);
        let (col, end_col) = (clean(p.col), clean(p.end_col));
        if (col.is_none() || end_col.is_none()) && (end_line.is_none() || end_line == Some(l)) {
            return Position::line_only(l);
        }
        Position { line: Some(l), end_line, col, end_col }
    }

    fn any_position() -> impl Strategy<Value = Position> {
        let small = prop_oneof![Just(None), (0..20i32).prop_map(Some), (-3..300i32).prop_map(Some)];
        let wide = prop_oneof![Just(None), (0..200i32).prop_map(Some), any::<i32>().prop_map(Some)];
        (small.clone(), small, wide.clone(), wide).prop_map(|(line, end_line, col, end_col)| {
            // Keep end lines near the line most of the time, so short and one-line forms occur.
            let end_line = end_line.map(|d| line.unwrap_or(0).wrapping_add(d % 4));
            Position { line, end_line, col, end_col }
        })
    }

    fn writers() -> impl Strategy<Value = TableWriter> {
        prop_oneof![
            Just(TableWriter::Python310),
            Just(TableWriter::Python311),
            Just(TableWriter::Python312),
            Just(TableWriter::Python314)
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_positions_back(
            writer in writers(),
            first_line in -2..500i32,
            runs in prop::collection::vec((any_position(), 1..20usize, any::<bool>()), 0..40),
        ) {
            let mut positions = Vec::new();
            let mut starts = Vec::new();
            for (p, len, split) in runs {
                for i in 0..len {
                    positions.push(p);
                    starts.push(i == 0 || (split && i % 3 == 0));
                }
            }
            let table = encode_positions_as(writer, first_line, &positions, &starts);
            let decoded = decode_positions(writer.format(), &table, first_line, positions.len()).unwrap();
            let canonical: Vec<Position> = positions.iter().map(|&p| after_roundtrip(p, writer)).collect();
            prop_assert_eq!(&decoded, &canonical);
            // Tables written from canonical positions re-encode identically. (Not `table`:
            // neighbours that differ only in what the format drops stay separate entries.)
            let canonical_table = encode_positions_as(writer, first_line, &canonical, &starts);
            let again = decode_positions(writer.format(), &canonical_table, first_line, positions.len()).unwrap();
            prop_assert_eq!(&again, &canonical);
            prop_assert_eq!(encode_positions_as(writer, first_line, &again, &starts), canonical_table);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), units in 0..80usize) {
            for format in [L310, PEP] {
                let _ = decode_positions(format, &bytes, 1, units);
            }
        }
    }
}
