//! Checks the side-table codecs against corpora dumped by `tests/python/dump_tables_corpus.py`.
//!
//!     cargo run --release --example codecs_check -- /tmp/frontrun-tables-3.12.bin [...]
//!
//! For every code object: (1) decoded positions equal the interpreter's, (2) re-encoding the
//! positions gives the identical table, (3) the exception table decodes and re-encodes
//! identically. Prints counts per corpus and the first few failures; exits 1 on any failure.

use frontrun::exctable;
use frontrun::linetable::{self, Position, TableWriter};
use frontrun::tables::LocationFormat;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const NONE: i32 = i32::MIN;
const SHOWN_FAILURES: usize = 5;

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        slice
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn blob(&mut self) -> &'a [u8] {
        let n = self.u32() as usize;
        self.take(n)
    }
}

fn opt(v: i32) -> Option<i32> {
    (v != NONE).then_some(v)
}

#[derive(Default)]
struct Counts {
    objects: usize,
    positions_ok: usize,
    linetable_ok: usize,
    /// Re-encoded with the version-blind `encode_positions(format, ..)` instead.
    format_only_ok: usize,
    codec_time: Duration,
    exctable_ok: usize,
    exc_entries: usize,
    /// PEP 657: entries per code (0-15); 3.10: [pairs, (0, ±127) prefixes, 254-byte pieces,
    /// no-line pairs, line delta 0 after a real line].
    forms: [usize; 16],
    failures: Vec<String>,
}

impl Counts {
    fn fail(&mut self, message: String) {
        if self.failures.len() < SHOWN_FAILURES {
            self.failures.push(message);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn tally_forms(forms: &mut [usize; 16], format: LocationFormat, table: &[u8]) {
    match format {
        LocationFormat::Pep657 => {
            for &byte in table.iter().filter(|&&b| b & 0x80 != 0) {
                forms[(byte >> 3 & 15) as usize] += 1;
            }
        }
        LocationFormat::LineTable310 => {
            for pair in table.chunks_exact(2) {
                let (bytes, line) = (pair[0], pair[1] as i8);
                forms[0] += 1;
                forms[1] += (bytes == 0) as usize;
                forms[2] += (bytes == 254) as usize;
                forms[3] += (line == -128) as usize;
                forms[4] += (bytes != 0 && line == 0) as usize;
            }
        }
    }
}

fn check(path: &str) -> Result<Counts, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if data.len() < 6 || &data[..4] != b"FRTC" {
        return Err(format!("{path}: not a table corpus"));
    }
    let (major, minor) = (data[4], data[5]);
    let writer = TableWriter::for_version(major, minor).ok_or(format!("{path}: version {major}.{minor}"))?;
    let format = writer.format();
    let mut cursor = Cursor { bytes: &data, at: 6 };
    let mut counts = Counts::default();
    while cursor.at < data.len() {
        let units = cursor.u32() as usize;
        let first_line = cursor.i32();
        let _code = cursor.blob();
        let linetable = cursor.blob();
        let exctable = cursor.blob();
        let starts: Vec<bool> = cursor.blob().iter().map(|&b| b != 0).collect();
        let n = cursor.u32() as usize;
        let expected: Vec<Position> = (0..n)
            .map(|_| Position {
                line: opt(cursor.i32()),
                end_line: opt(cursor.i32()),
                col: opt(cursor.i32()),
                end_col: opt(cursor.i32()),
            })
            .collect();
        tally_forms(&mut counts.forms, format, linetable);
        let id = counts.objects;
        // Time the codecs alone: one decode and one encode of each table.
        let clock = Instant::now();
        if let Ok(positions) = linetable::decode_positions(format, linetable, first_line, units) {
            std::hint::black_box(linetable::encode_positions_as(writer, first_line, &positions, &starts));
        }
        if let Ok(entries) = exctable::decode(exctable) {
            std::hint::black_box(exctable::encode(&entries));
        }
        counts.codec_time += clock.elapsed();
        counts.objects += 1;

        match linetable::decode_positions(format, linetable, first_line, units) {
            Err(e) => counts.fail(format!("#{id}: decode error {e}; table {}", hex(linetable))),
            Ok(positions) => {
                if positions == expected {
                    counts.positions_ok += 1;
                } else {
                    let i = positions.iter().zip(&expected).position(|(a, b)| a != b);
                    counts.fail(format!(
                        "#{id}: positions differ at unit {i:?} (lengths {} vs {}): got {:?} want {:?}; first_line {first_line} table {}",
                        positions.len(),
                        expected.len(),
                        i.map(|i| positions[i]),
                        i.map(|i| expected[i]),
                        hex(linetable)
                    ));
                }
                let encoded = linetable::encode_positions_as(writer, first_line, &positions, &starts);
                let format_only = linetable::encode_positions(format, first_line, &positions, &starts);
                counts.format_only_ok += (format_only == linetable) as usize;
                if encoded == linetable {
                    counts.linetable_ok += 1;
                } else {
                    counts.fail(format!(
                        "#{id}: re-encoded table differs; first_line {first_line}\n   want {}\n   got  {}\n   starts {:?}",
                        hex(linetable),
                        hex(&encoded),
                        starts.iter().map(|&s| s as u8).collect::<Vec<_>>()
                    ));
                }
            }
        }

        match exctable::decode(exctable) {
            Err(e) => counts.fail(format!("#{id}: exception table error {e}; table {}", hex(exctable))),
            Ok(entries) => {
                counts.exc_entries += entries.len();
                if exctable::encode(&entries) == exctable {
                    counts.exctable_ok += 1;
                } else {
                    counts.fail(format!("#{id}: exception table re-encodes differently: {}", hex(exctable)));
                }
            }
        }
    }
    Ok(counts)
}

fn main() -> ExitCode {
    let mut all_ok = true;
    for path in std::env::args().skip(1) {
        match check(&path) {
            Err(e) => {
                eprintln!("{e}");
                all_ok = false;
            }
            Ok(c) => {
                let ok = c.positions_ok == c.objects && c.linetable_ok == c.objects && c.exctable_ok == c.objects;
                all_ok &= ok;
                println!(
                    "{path}: {} code objects; positions {}/{}; linetable re-encode {}/{}; exception table {}/{} ({} entries){}",
                    c.objects,
                    c.positions_ok,
                    c.objects,
                    c.linetable_ok,
                    c.objects,
                    c.exctable_ok,
                    c.objects,
                    c.exc_entries,
                    if ok { "  OK" } else { "  FAIL" }
                );
                println!(
                    "  {:.2} µs per code object (decode + encode, both tables); version-blind \
                     encode_positions(format): {}/{}; table entries by form: {:?}",
                    c.codec_time.as_secs_f64() * 1e6 / c.objects.max(1) as f64,
                    c.format_only_ok,
                    c.objects,
                    c.forms
                );
                for failure in &c.failures {
                    println!("  {failure}");
                }
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
