//! Python's `repr` of unmarshalled constants, for listings of other versions' pycs (which the
//! running interpreter cannot load): what `dis` would show beside a `LOAD_CONST`.

use super::obj::{Obj, Value};

impl Obj {
    /// The constant as Python's `repr` writes it; a code object as `<code object NAME, line N>`.
    pub fn repr(&self) -> String {
        let mut out = String::new();
        write_repr(self, &mut out, 0);
        out
    }
}

/// Containers nested deeper are shown as `...`: input nests up to 2000 levels, and this recurses.
const MAX_DEPTH: usize = 100;

fn write_repr(obj: &Obj, out: &mut String, depth: usize) {
    if depth > MAX_DEPTH {
        out.push_str("...");
        return;
    }
    match &obj.resolve().value {
        Value::None => out.push_str("None"),
        Value::False => out.push_str("False"),
        Value::True => out.push_str("True"),
        Value::Ellipsis => out.push_str("Ellipsis"),
        Value::StopIteration => out.push_str("StopIteration"),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Int64(n) => out.push_str(&n.to_string()),
        Value::Long { negative, digits } => out.push_str(&long_decimal(*negative, digits)),
        Value::Float(bits) => out.push_str(&float_repr(f64::from_bits(*bits))),
        Value::FloatText(text) => out.push_str(&String::from_utf8_lossy(text)),
        Value::Complex(re, im) => out.push_str(&complex_repr(f64::from_bits(*re), f64::from_bits(*im))),
        Value::ComplexText(parts) => {
            let [re, im] = &**parts;
            out.push_str(&format!("({}+{}j)", String::from_utf8_lossy(re), String::from_utf8_lossy(im)));
        }
        Value::Bytes(data) => bytes_repr(data, out),
        Value::Str { .. } => str_repr(&obj.as_str().unwrap_or_default(), out),
        Value::Tuple { items, .. } => {
            out.push('(');
            items_repr(items, out, depth);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Value::List(items) => {
            out.push('[');
            items_repr(items, out, depth);
            out.push(']');
        }
        Value::Set(items) if items.is_empty() => out.push_str("set()"),
        Value::Set(items) => {
            out.push('{');
            items_repr(items, out, depth);
            out.push('}');
        }
        Value::FrozenSet(items) if items.is_empty() => out.push_str("frozenset()"),
        Value::FrozenSet(items) => {
            out.push_str("frozenset({");
            items_repr(items, out, depth);
            out.push_str("})");
        }
        Value::Dict(pairs) => pairs_repr(pairs, out, depth),
        Value::FrozenDict(pairs) => {
            out.push_str("frozendict(");
            pairs_repr(pairs, out, depth);
            out.push(')');
        }
        Value::Slice(parts) => {
            out.push_str("slice(");
            items_repr(&**parts, out, depth);
            out.push(')');
        }
        Value::Code(code) => {
            let name = code.qualname().unwrap_or(&code.name).as_str().unwrap_or_default();
            out.push_str(&format!("<code object {name}, line {}>", code.firstlineno));
        }
        Value::Ref(_) => out.push_str("<unresolved reference>"),
    }
}

fn items_repr(items: &[Obj], out: &mut String, depth: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(item, out, depth + 1);
    }
}

fn pairs_repr(pairs: &[(Obj, Obj)], out: &mut String, depth: usize) {
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(k, out, depth + 1);
        out.push_str(": ");
        write_repr(v, out, depth + 1);
    }
    out.push('}');
}

/// Base 2**15 digits (least significant first) in decimal, four digits at a time.
fn long_decimal(negative: bool, digits: &[u16]) -> String {
    let mut rest: Vec<u32> = digits.iter().rev().map(|&d| d as u32).collect();
    let mut groups = Vec::new();
    while !rest.is_empty() {
        let mut remainder = 0u32;
        for d in rest.iter_mut() {
            let current = (remainder << 15) | *d;
            *d = current / 10_000;
            remainder = current % 10_000;
        }
        groups.push(remainder);
        let zeros = rest.iter().take_while(|&&d| d == 0).count();
        rest.drain(..zeros);
    }
    let mut text = String::from(if negative { "-" } else { "" });
    match groups.split_last() {
        None => text.push('0'),
        Some((first, lower)) => {
            text.push_str(&first.to_string());
            for g in lower.iter().rev() {
                text.push_str(&format!("{g:04}"));
            }
        }
    }
    text
}

/// Python's float repr: the shortest digits that read back, positional for exponents
/// -4..16, else `1e+16` style.
fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("LowerExp writes an exponent");
    let exponent: i32 = exponent.parse().expect("LowerExp writes an integer exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if !(-4..16).contains(&exponent) {
        let mantissa = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs());
    }
    let point = exponent + 1; // digits before the decimal point
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    };
    format!("{sign}{text}")
}

/// Python's complex repr: `1j`, `(1+2j)`, `(-0-1.5j)`.
fn complex_repr(re: f64, im: f64) -> String {
    let part = |x: f64| {
        let r = float_repr(x);
        r.strip_suffix(".0").map(str::to_string).unwrap_or(r)
    };
    if re == 0.0 && re.is_sign_positive() {
        return format!("{}j", part(im));
    }
    let im_text = part(im);
    let sign = if im_text.starts_with('-') { "" } else { "+" };
    format!("({}{sign}{im_text}j)", part(re))
}

fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

fn str_repr(s: &str, out: &mut String) {
    let quote = quote_for(s.contains('\''), s.contains('"'));
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn bytes_repr(data: &[u8], out: &mut String) {
    let quote = quote_for(data.contains(&b'\''), data.contains(&b'"'));
    out.push('b');
    out.push(quote);
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b as char == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
}
