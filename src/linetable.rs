//! TEMPORARY stand-in for the `codecs` branch's line/location-table codec (same API).
//! Written only so the bytecode round trip can be checked before that branch lands;
//! the lead takes the `codecs` version at merge.

use crate::tables::LocationFormat;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Position {
    pub line: Option<i32>,
    pub end_line: Option<i32>,
    pub col: Option<i32>,
    pub end_col: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError(pub String);

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TableError {}

pub fn decode_positions(
    format: LocationFormat,
    table: &[u8],
    first_line: i32,
    units: usize,
) -> Result<Vec<Position>, TableError> {
    let mut out = Vec::with_capacity(units);
    match format {
        LocationFormat::LineTable310 => {
            let mut line = first_line;
            for pair in table.chunks(2) {
                let [bdelta, ldelta] = pair else {
                    return Err(TableError("odd-length line table".into()));
                };
                let ldelta = *ldelta as i8;
                let this = if ldelta == -128 {
                    None
                } else {
                    line += ldelta as i32;
                    Some(line)
                };
                let p = Position { line: this, ..Default::default() };
                out.extend(std::iter::repeat(p).take(*bdelta as usize / 2));
            }
        }
        LocationFormat::Pep657 => {
            let mut line = first_line;
            let mut i = 0;
            let byte = |i: &mut usize| -> Result<u8, TableError> {
                let b = *table.get(*i).ok_or_else(|| TableError("truncated location table".into()))?;
                *i += 1;
                Ok(b)
            };
            let varint = |i: &mut usize| -> Result<u32, TableError> {
                let mut v = 0u32;
                let mut shift = 0;
                loop {
                    let b = byte(i)?;
                    v |= ((b & 63) as u32).checked_shl(shift).unwrap_or(0);
                    shift += 6;
                    if b & 64 == 0 || shift > 36 {
                        return Ok(v);
                    }
                }
            };
            while i < table.len() {
                let head = byte(&mut i)?;
                if head & 128 == 0 {
                    return Err(TableError(format!("location entry at byte {} lacks its start bit", i - 1)));
                }
                let code = (head >> 3) & 15;
                let len = (head & 7) as usize + 1;
                let p = match code {
                    15 => Position::default(),
                    14 => {
                        let d = varint(&mut i)?;
                        line += if d & 1 == 1 { -((d >> 1) as i32) } else { (d >> 1) as i32 };
                        let end_line = line + varint(&mut i)? as i32;
                        let col = varint(&mut i)? as i32;
                        let end_col = varint(&mut i)? as i32;
                        Position {
                            line: Some(line),
                            end_line: Some(end_line),
                            col: (col > 0).then(|| col - 1),
                            end_col: (end_col > 0).then(|| end_col - 1),
                        }
                    }
                    13 => {
                        let d = varint(&mut i)?;
                        line += if d & 1 == 1 { -((d >> 1) as i32) } else { (d >> 1) as i32 };
                        Position { line: Some(line), end_line: Some(line), col: None, end_col: None }
                    }
                    10..=12 => {
                        line += code as i32 - 10;
                        let col = byte(&mut i)? as i32;
                        let end_col = byte(&mut i)? as i32;
                        Position { line: Some(line), end_line: Some(line), col: Some(col), end_col: Some(end_col) }
                    }
                    _ => {
                        let second = byte(&mut i)? as i32;
                        let col = (code as i32) << 3 | second >> 4;
                        Position {
                            line: Some(line),
                            end_line: Some(line),
                            col: Some(col),
                            end_col: Some(col + (second & 15)),
                        }
                    }
                };
                out.extend(std::iter::repeat(p).take(len));
            }
        }
    }
    out.resize(units, Position::default());
    Ok(out)
}

pub fn encode_positions(format: LocationFormat, first_line: i32, positions: &[Position], starts: &[bool]) -> Vec<u8> {
    let mut out = Vec::new();
    // Runs of instructions with one position (a run breaks only where an instruction starts).
    let mut runs: Vec<(Position, usize)> = Vec::new();
    for (i, p) in positions.iter().enumerate() {
        match runs.last_mut() {
            Some((q, n)) if *q == *p && !starts[i] => *n += 1,
            _ => runs.push((*p, 1)),
        }
    }
    match format {
        LocationFormat::LineTable310 => {
            // Runs by line only.
            let mut prev = first_line;
            let mut merged: Vec<(Option<i32>, usize)> = Vec::new();
            let mut cur_line = Some(first_line);
            let mut cur_len = 0usize;
            for (p, n) in runs {
                if p.line == cur_line {
                    cur_len += n;
                } else {
                    if cur_len > 0 {
                        merged.push((cur_line, cur_len));
                    }
                    cur_line = p.line;
                    cur_len = n;
                }
            }
            if cur_len > 0 {
                merged.push((cur_line, cur_len));
            }
            for (line, units) in merged {
                let mut bdelta = units * 2;
                let mut ldelta: i32;
                match line {
                    None => ldelta = -128,
                    Some(l) => {
                        ldelta = l - prev;
                        prev = l;
                        while ldelta > 127 {
                            out.extend([0, 127]);
                            ldelta -= 127;
                        }
                        while ldelta < -127 {
                            out.extend([0, (-127i8) as u8]);
                            ldelta += 127;
                        }
                    }
                }
                while bdelta > 254 {
                    out.extend([254, ldelta as i8 as u8]);
                    ldelta = if line.is_none() { -128 } else { 0 };
                    bdelta -= 254;
                }
                out.extend([bdelta as u8, ldelta as i8 as u8]);
            }
        }
        LocationFormat::Pep657 => {
            let mut line = first_line;
            let varint = |out: &mut Vec<u8>, mut v: u32| {
                while v >= 64 {
                    out.push(64 | (v & 63) as u8);
                    v >>= 6;
                }
                out.push(v as u8);
            };
            let svarint =
                |out: &mut Vec<u8>, v: i32| varint(out, if v < 0 { ((-v) as u32) << 1 | 1 } else { (v as u32) << 1 });
            for (p, mut n) in runs {
                while n > 0 {
                    let len = n.min(8);
                    n -= len;
                    let head = |code: u8| 128 | code << 3 | (len - 1) as u8;
                    let Some(l) = p.line else {
                        out.push(head(15));
                        continue;
                    };
                    let delta = l - line;
                    let (col, end_col) = (p.col.unwrap_or(-1), p.end_col.unwrap_or(-1));
                    let end_line = p.end_line.unwrap_or(-1);
                    if col < 0 || end_col < 0 {
                        if end_line == l || end_line == -1 {
                            out.push(head(13));
                            svarint(&mut out, delta);
                            line = l;
                            continue;
                        }
                    } else if end_line == l {
                        if delta == 0 && col < 80 && end_col - col < 16 && end_col >= col {
                            out.push(head((col >> 3) as u8));
                            out.push(((col & 7) << 4 | (end_col - col)) as u8);
                            continue;
                        }
                        if (0..3).contains(&delta) && col < 128 && end_col < 128 {
                            out.push(head(10 + delta as u8));
                            out.extend([col as u8, end_col as u8]);
                            line = l;
                            continue;
                        }
                    }
                    out.push(head(14));
                    svarint(&mut out, delta);
                    varint(&mut out, (end_line - l) as u32);
                    varint(&mut out, (col + 1) as u32);
                    varint(&mut out, (end_col + 1) as u32);
                    line = l;
                }
            }
        }
    }
    out
}
