//! Unit tests on hand-made marshal data: each type code, the reference rules, and every
//! error path. Real interpreter output is covered by `tests/marshal_fixtures.rs`.

use super::*;

const V310: PyVersion = PyVersion::new(3, 10);
const V312: PyVersion = PyVersion::new(3, 12);
const V314: PyVersion = PyVersion::new(3, 14);
const V315: PyVersion = PyVersion::new(3, 15);

fn roundtrip(data: &[u8], v: PyVersion) -> Obj {
    let obj = loads(data, v).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dumps(&obj, v).unwrap(), data, "{obj:?}");
    obj
}

fn kind(data: &[u8], v: PyVersion) -> ErrorKind {
    loads(data, v).expect_err("should fail").kind
}

fn i32le(n: i32) -> [u8; 4] {
    n.to_le_bytes()
}

#[test]
fn singletons() {
    for (byte, value) in [
        (b'N', Value::None),
        (b'T', Value::True),
        (b'F', Value::False),
        (b'.', Value::Ellipsis),
        (b'S', Value::StopIteration),
    ] {
        assert_eq!(roundtrip(&[byte], V312).value, value);
        // A flag bit on a singleton registers nothing but is kept.
        let obj = roundtrip(&[byte | 0x80], V312);
        assert_eq!(obj.flag, Some(RefId::ANON));
    }
    // ... so a reference after it has nothing to point at.
    assert_eq!(kind(b")\x02\xcer\x00\x00\x00\x00", V312), ErrorKind::InvalidRef(0));
}

#[test]
fn ints() {
    let obj = roundtrip(b"i\xff\xff\xff\xff", V312);
    assert_eq!(obj.as_i64(), Some(-1));
    let obj = roundtrip(b"I\x00\x00\x00\x00\x01\x00\x00\x00", V312);
    assert_eq!(obj.value, Value::Int64(1 << 32));
    // 2**15 + 1 as two digits; negative size means negative.
    let obj = roundtrip(b"l\xfe\xff\xff\xff\x01\x00\x01\x00", V312);
    assert_eq!(obj.as_i64(), Some(-(1 << 15) - 1));
    let zero = roundtrip(b"l\x00\x00\x00\x00", V312);
    assert_eq!(zero.as_i64(), Some(0));
    assert_eq!(kind(b"l\x01\x00\x00\x00\x00\x80", V312), ErrorKind::LongDigitOutOfRange(0x8000));
    assert_eq!(kind(b"l\x02\x00\x00\x00\x01\x00\x00\x00", V312), ErrorKind::UnnormalizedLong);
    assert!(matches!(kind(b"l\x00\x00\x00\x80", V312), ErrorKind::SizeOutOfRange { .. }));
}

#[test]
fn constructed_ints_match_cpython_encoding() {
    assert_eq!(dumps(&Obj::int(5), V312).unwrap(), b"i\x05\x00\x00\x00");
    assert_eq!(dumps(&Obj::int(-(1 << 31)), V312).unwrap(), b"i\x00\x00\x00\x80");
    // marshal.dumps(2**31) == b'l\x03\x00\x00\x00\x00\x00\x00\x00\x02\x00'
    assert_eq!(dumps(&Obj::int(1 << 31), V312).unwrap(), b"l\x03\x00\x00\x00\x00\x00\x00\x00\x02\x00");
    assert_eq!(Obj::int(i64::MIN).as_i64(), Some(i64::MIN));
    assert_eq!(Obj::int(i64::MAX).as_i64(), Some(i64::MAX));
    assert_eq!(Obj::int_big(1 << 64).as_i64(), None);
}

#[test]
fn floats_keep_bits_and_text() {
    let nan = 0x7ff8_0000_dead_beefu64;
    let mut data = vec![b'g'];
    data.extend_from_slice(&nan.to_le_bytes());
    assert_eq!(roundtrip(&data, V312).value, Value::Float(nan));
    roundtrip(b"f\x031.5", V312);
    roundtrip(b"f\x03inf", V312);
    roundtrip(b"x\x011\x04-2.5", V312);
    let mut y = vec![b'y'];
    y.extend_from_slice(&1f64.to_bits().to_le_bytes());
    y.extend_from_slice(&(-0f64).to_bits().to_le_bytes());
    roundtrip(&y, V312);
    assert_eq!(kind(b"f\x03abc", V312), ErrorKind::BadFloatText);
    assert_eq!(kind(b"f\x00", V312), ErrorKind::BadFloatText);
}

#[test]
fn bytes_and_strings() {
    roundtrip(b"s\x03\x00\x00\x00a\x00b", V312);
    for (code, kind_) in [
        (b'z', StrKind::ShortAscii),
        (b'Z', StrKind::ShortAsciiInterned),
        (b'a', StrKind::Ascii),
        (b'A', StrKind::AsciiInterned),
        (b'u', StrKind::Unicode),
        (b't', StrKind::Interned),
    ] {
        let data = if matches!(code, b'z' | b'Z') {
            vec![code, 2, b'h', b'i']
        } else {
            [&[code][..], &i32le(2), b"hi"].concat()
        };
        let obj = roundtrip(&data, V312);
        assert_eq!(obj.value, Value::Str { kind: kind_, data: b"hi".to_vec() });
        assert_eq!(obj.as_str().unwrap(), "hi");
    }
    // One-byte kinds are latin-1 (CPython does not check they are ASCII).
    assert_eq!(roundtrip(b"z\x01\xe9", V312).as_str().unwrap(), "é");
    // Lone surrogates are accepted and kept raw; other invalid UTF-8 is refused.
    let obj = roundtrip(b"u\x03\x00\x00\x00\xed\xb0\x80", V312);
    assert_eq!(obj.as_str().unwrap(), "\u{fffd}\u{fffd}\u{fffd}");
    assert_eq!(kind(b"u\x02\x00\x00\x00\xc3\x28", V312), ErrorKind::InvalidUtf8);
    assert_eq!(kind(b"u\x01\x00\x00\x00\xed", V312), ErrorKind::InvalidUtf8);
}

#[test]
fn constructed_strings_pick_cpython_kinds() {
    let kind_of = |o: Obj| match o.value {
        Value::Str { kind, .. } => kind,
        _ => unreachable!(),
    };
    assert_eq!(kind_of(Obj::str("x")), StrKind::ShortAscii);
    assert_eq!(kind_of(Obj::interned("x")), StrKind::ShortAsciiInterned);
    assert_eq!(kind_of(Obj::str(&"x".repeat(256))), StrKind::Ascii);
    assert_eq!(kind_of(Obj::interned("é")), StrKind::Interned);
    // A short kind that outgrew 255 bytes is written in the long form.
    let long = Obj::new(Value::Str { kind: StrKind::ShortAscii, data: vec![b'x'; 300] });
    let bytes = dumps(&long, V312).unwrap();
    assert_eq!(&bytes[..5], b"a\x2c\x01\x00\x00");
}

#[test]
fn tuples_lists_dicts_sets() {
    let obj = roundtrip(b")\x02N\xe9\x01\x00\x00\x00", V312);
    assert_eq!(obj.as_tuple().unwrap().len(), 2);
    // The long form of a short tuple is kept.
    let obj = roundtrip(b"(\x01\x00\x00\x00N", V312);
    assert!(matches!(obj.value, Value::Tuple { long_form: true, .. }));
    roundtrip(b"[\x02\x00\x00\x00NT", V312);
    roundtrip(b"{z\x01ki\x01\x00\x00\x000", V312);
    roundtrip(b"<\x01\x00\x00\x00N", V312);
    roundtrip(b">\x00\x00\x00\x00", V312);
    assert_eq!(kind(b")\x02N0", V312), ErrorKind::NullObject { context: "tuple" });
    assert_eq!(kind(b"0", V312), ErrorKind::NullObject { context: "top level object" });
    assert_eq!(kind(b"{N0", V312), ErrorKind::NullObject { context: "dict value" });
    assert!(matches!(kind(b"[\xff\xff\xff\xff", V312), ErrorKind::SizeOutOfRange { .. }));
}

#[test]
fn huge_declared_lengths_fail_before_allocating() {
    for data in [&b"(\xff\xff\xff\x7fN"[..], b"[\xff\xff\xff\x7f", b"<\xff\xff\xff\x7f", b"l\xff\xff\xff\x7f\x01\x00"] {
        assert!(matches!(kind(data, V312), ErrorKind::SizeExceedsInput { .. }), "{data:?}");
    }
    for data in [&b"s\xff\xff\xff\x7fab"[..], b"a\xff\xff\xff\x7f", b"u\xff\xff\xff\x7f"] {
        assert!(matches!(kind(data, V312), ErrorKind::Truncated { .. }), "{data:?}");
    }
}

#[test]
fn unknown_and_version_gated_type_codes() {
    assert_eq!(kind(b"?", V312), ErrorKind::UnknownTypeCode(b'?'));
    assert_eq!(kind(b"\xbf", V312), ErrorKind::UnknownTypeCode(b'?'));
    assert_eq!(kind(b"Q", V312), ErrorKind::UnknownTypeCode(b'Q'));
    assert_eq!(kind(b":NNN", V312), ErrorKind::TypeNotInVersion { code: b':', marshal_version: 4 });
    roundtrip(b":i\x01\x00\x00\x00NN", V314);
    assert_eq!(kind(b"}0", V314), ErrorKind::TypeNotInVersion { code: b'}', marshal_version: 5 });
    roundtrip(b"}z\x01ki\x01\x00\x00\x000", V315);
    assert_eq!(kind(b"N", PyVersion::new(3, 9)), ErrorKind::UnsupportedVersion(PyVersion::new(3, 9)));
}

#[test]
fn references_follow_cpython_numbering() {
    // [s, s] with s flagged: index 0 is the list itself, 1 the string.
    let obj = roundtrip(b"\xdb\x02\x00\x00\x00\xfa\x01xr\x01\x00\x00\x00", V312);
    let Value::List(items) = &obj.value else { panic!() };
    assert_eq!(items[1].resolve(), &items[0]);
    assert_eq!(items[1].as_str().unwrap(), "x");
    // A list may contain itself (registered before its items). The copy the reference holds
    // cannot contain itself: its own inner reference is left without a target.
    let obj = roundtrip(b"\xdb\x01\x00\x00\x00r\x00\x00\x00\x00", V312);
    let Value::List(items) = &obj.value else { panic!() };
    let Value::List(copy) = &items[0].resolve().value else { panic!() };
    assert!(matches!(&copy[0].value, Value::Ref(Ref { target: None, .. })));
    // A frozenset, slice or code object is registered only once complete.
    assert_eq!(kind(b"\xbe\x01\x00\x00\x00r\x00\x00\x00\x00", V312), ErrorKind::RefToIncomplete(0));
    assert_eq!(kind(b"\xbaNNr\x00\x00\x00\x00", V314), ErrorKind::RefToIncomplete(0));
    // An empty frozenset is registered at once (CPython calls frozenset() first).
    roundtrip(b")\x02\xbe\x00\x00\x00\x00r\x00\x00\x00\x00", V312);
    assert_eq!(kind(b"r\x00\x00\x00\x00", V312), ErrorKind::InvalidRef(0));
    assert_eq!(kind(b")\x01r\xff\xff\xff\xff", V312), ErrorKind::InvalidRef(-1));
}

/// A 3.12 code object `def f(): pass` with its filename shared by reference.
fn small_code(flag_filename: bool) -> Vec<u8> {
    let mut d = vec![b'c' | 0x80];
    for n in [0, 0, 0, 1, 3] {
        d.extend_from_slice(&i32le(n));
    }
    d.extend_from_slice(b"s\x04\x00\x00\x00\x97\x00y\x00"); // code
    d.extend_from_slice(b")\x01N"); // consts
    d.extend_from_slice(b")\x00"); // names
    d.extend_from_slice(b")\x00"); // localsplusnames
    d.extend_from_slice(b"s\x00\x00\x00\x00"); // localspluskinds
    d.extend_from_slice(if flag_filename { b"\xfa\x04f.py" } else { b"z\x04f.py" });
    d.extend_from_slice(b"\xda\x01f"); // name
                                       // qualname: the same str as name (index 0 is the code object itself)
    d.extend_from_slice(&[b'r', if flag_filename { 2 } else { 1 }, 0, 0, 0]);
    d.extend_from_slice(&i32le(1));
    d.extend_from_slice(b"s\x02\x00\x00\x00\x80\x00"); // linetable
    d.extend_from_slice(b"s\x00\x00\x00\x00"); // exceptiontable
    d
}

#[test]
fn code_objects() {
    let obj = roundtrip(&small_code(false), V312);
    let code = obj.as_code().unwrap();
    assert_eq!(code.stacksize, 1);
    assert_eq!(code.qualname().unwrap().as_str().unwrap(), "f");
    assert_eq!(code.filename.as_str().unwrap(), "f.py");
    // Written for a release with another layout: refused.
    let e = dumps(&obj, V310).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::CodeLayoutMismatch { .. }));
    // Field types are checked, through references too.
    let mut bad = small_code(false);
    let at = bad.iter().position(|&b| b == 0xda).unwrap();
    bad[at] = b'i' | 0x80; // name becomes an int...
    bad.splice(at + 1..at + 3, i32le(7));
    assert_eq!(kind(&bad, V312), ErrorKind::CodeFieldType { field: "name", expected: "a str" });
    // The same bytes are a 3.10 code object with other fields: misread, but never a panic.
    assert!(loads(&small_code(false), V310).is_err());
}

#[test]
fn replaced_definitions_are_written_inline_at_their_references() {
    // The qualname refers to the name; replace the name: the qualname must carry the text.
    let obj = loads(&small_code(false), V312).unwrap();
    let mut edited = obj.clone();
    let Value::Code(code) = &mut edited.value else { panic!() };
    code.name = Obj::interned("g");
    let bytes = dumps(&edited, V312).unwrap();
    let back = loads(&bytes, V312).unwrap();
    let code = back.as_code().unwrap();
    assert_eq!(code.name.as_str().unwrap(), "g");
    assert_eq!(code.qualname().unwrap().as_str().unwrap(), "f");
    // A reference with no target and no definition cannot be written.
    let orphan = Obj::new(Value::Ref(Ref { id: RefId { doc: 0, index: 3 }, target: None }));
    assert!(matches!(dumps(&orphan, V312).unwrap_err().kind, ErrorKind::DanglingRef(_)));
    // Trees from two documents combine without their ids colliding.
    let a = loads(b"\xdb\x02\x00\x00\x00\xfa\x01xr\x01\x00\x00\x00", V312).unwrap();
    let b = loads(b"\xdb\x02\x00\x00\x00\xfa\x01yr\x01\x00\x00\x00", V312).unwrap();
    let both = Obj::tuple(vec![a.clone(), b.clone()]);
    let back = loads(&dumps(&both, V312).unwrap(), V312).unwrap();
    let parts = back.as_tuple().unwrap();
    let Value::List(second) = &parts[1].value else { panic!() };
    let texts: Vec<_> = second.iter().map(|o| o.as_str().unwrap().into_owned()).collect();
    assert_eq!(texts, ["y", "y"]);
}

#[test]
fn nesting_limit() {
    let nested = |depth: usize| {
        let mut d = [b')', 1].repeat(depth - 1);
        d.push(b'N');
        d
    };
    // Run on a small stack to prove the recursion is shallow enough.
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let ok = roundtrip(&nested(MAX_DEPTH as usize), V312);
            assert_eq!(kind(&nested(MAX_DEPTH as usize + 1), V312), ErrorKind::TooDeep);
            // Built by hand one level deeper: the writer refuses it too.
            let too_deep = Obj::tuple(vec![ok]);
            assert_eq!(dumps(&too_deep, V312).unwrap_err().kind, ErrorKind::TooDeep);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deep_references_resolve_on_a_small_stack() {
    // [s, ((( ... (s,) ... )))] with the reference 1990 levels down.
    let mut data = b"\xdb\x02\x00\x00\x00\xfa\x01x".to_vec();
    data.extend([b')', 1].repeat(1990));
    data.extend(b"r\x01\x00\x00\x00");
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let obj = roundtrip(&data, V312);
            let mut inner = &obj.as_list().unwrap()[1];
            while let Some(items) = inner.as_tuple() {
                inner = &items[0];
            }
            assert_eq!(inner.as_str().unwrap(), "x");
            let plain = dumps_without_refs(&obj, V312).unwrap();
            assert_eq!(plain.len(), data.len() - 2);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn trailing_bytes_are_ignored_but_counted() {
    let (obj, used) = loads_prefix(b"Nextra", V312).unwrap();
    assert_eq!((obj.value, used), (Value::None, 1));
}

fn pyc_bytes(flags: u32, rest: &[u8]) -> Vec<u8> {
    [&3531u16.to_le_bytes()[..], b"\r\n", &flags.to_le_bytes(), rest].concat()
}

#[test]
fn pyc_headers() {
    let body = small_code(true);
    let ts = pyc_bytes(0, &[&i32le(1234)[..], &i32le(99), &body].concat());
    let pyc = read_pyc(&ts).unwrap();
    assert_eq!(pyc.version, V312);
    assert_eq!(pyc.source, PycSource::Timestamp { mtime: 1234, size: 99 });
    assert_eq!(write_pyc(&pyc).unwrap(), ts);
    let hashed = pyc_bytes(3, &[&b"ABCDEFGH"[..], &body, b"tail"].concat());
    let pyc = read_pyc(&hashed).unwrap();
    assert_eq!(pyc.source, PycSource::Hash { hash: *b"ABCDEFGH", check_source: true });
    assert_eq!(pyc.flags(), 3);
    assert_eq!(pyc.trailing, b"tail");
    assert_eq!(write_pyc(&pyc).unwrap(), hashed);
    let fresh = Pyc::new(V312, PycSource::Hash { hash: [0; 8], check_source: false }, pyc.code).unwrap();
    assert_eq!(&write_pyc(&fresh).unwrap()[..8], b"\xcb\x0d\r\n\x01\x00\x00\x00");

    assert!(matches!(read_pyc(&ts[..15]).unwrap_err().kind, ErrorKind::Truncated { .. }));
    let mut bad = ts.clone();
    bad[0] = 0;
    assert!(matches!(read_pyc(&bad).unwrap_err().kind, ErrorKind::BadMagic { .. }));
    let mut bad = ts.clone();
    bad[3] = b'\r';
    assert!(matches!(read_pyc(&bad).unwrap_err().kind, ErrorKind::BadMagic { .. }));
    assert_eq!(read_pyc(&pyc_bytes(4, &[0; 8])).unwrap_err().kind, ErrorKind::BadPycFlags(4));
    // Errors inside the code carry offsets into the file.
    let e = read_pyc(&pyc_bytes(0, &[0, 0, 0, 0, 0, 0, 0, 0, b'?'])).unwrap_err();
    assert_eq!((e.offset, e.kind), (16, ErrorKind::UnknownTypeCode(b'?')));
}

#[test]
fn magic_table() {
    for (magic, v) in [(3439, V310), (3531, V312), (3627, V314), (3666, V315)] {
        assert_eq!(version_for_magic(magic), Some(v));
        assert_eq!(magic_for_version(v), Some(magic));
    }
    assert_eq!(version_for_magic(3413), None);
}

#[test]
fn error_messages_say_where_and_what() {
    let e = loads(b")\x02NQ", V312).unwrap_err();
    assert_eq!(e.to_string(), "bad marshal data at offset 3: unknown type code 0x51 ('Q')");
    let e = loads(b"[\xff\xff\xff\x7f", V312).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad marshal data at offset 0: list declares 2147483647 entries/bytes but only 0 bytes remain"
    );
}

#[test]
fn code_field_errors_point_at_the_field() {
    // consts given as a list: the offset is the list's type byte, not its last item's.
    let mut data = small_code(false);
    let at = data.iter().position(|&b| b == b')').unwrap();
    data.splice(at..at + 3, *b"[\x01\x00\x00\x00N");
    let e = loads(&data, V312).unwrap_err();
    assert_eq!((e.offset, e.kind), (at, ErrorKind::CodeFieldType { field: "consts", expected: "a tuple" }));
}
