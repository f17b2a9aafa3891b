//! TEMPORARY stand-in for the `codecs` branch's exception-table codec (same API).
//! Written only so the bytecode round trip can be checked before that branch lands;
//! the lead takes the `codecs` version at merge.

pub use crate::linetable::TableError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExcEntry {
    pub start: u32,
    /// Exclusive, in code units.
    pub end: u32,
    pub target: u32,
    pub depth: u32,
    pub lasti: bool,
}

pub fn decode(table: &[u8]) -> Result<Vec<ExcEntry>, TableError> {
    let mut out = Vec::new();
    let mut i = 0;
    let item = |i: &mut usize| -> Result<u32, TableError> {
        let mut v = 0u32;
        loop {
            let b = *table.get(*i).ok_or_else(|| TableError(format!("truncated exception table at byte {}", *i)))?;
            *i += 1;
            v = v.checked_shl(6).unwrap_or(0) | (b & 63) as u32;
            if b & 64 == 0 {
                return Ok(v);
            }
        }
    };
    while i < table.len() {
        if table[i] & 128 == 0 {
            return Err(TableError(format!("exception entry at byte {i} lacks its start bit")));
        }
        let start = item(&mut i)?;
        let size = item(&mut i)?;
        let target = item(&mut i)?;
        let dl = item(&mut i)?;
        out.push(ExcEntry { start, end: start.saturating_add(size), target, depth: dl >> 1, lasti: dl & 1 == 1 });
    }
    Ok(out)
}

pub fn encode(entries: &[ExcEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let item = |out: &mut Vec<u8>, v: u32, mut msb: u8| {
        for shift in [24, 18, 12, 6] {
            if v >= 1 << shift {
                out.push(((v >> shift) & 63) as u8 | 64 | msb);
                msb = 0;
            }
        }
        out.push((v & 63) as u8 | msb);
    };
    for e in entries {
        item(&mut out, e.start, 128);
        item(&mut out, e.end - e.start, 0);
        item(&mut out, e.target, 0);
        item(&mut out, e.depth << 1 | e.lasti as u32, 0);
    }
    out
}
