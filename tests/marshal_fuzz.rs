//! Arbitrary and mutated input never panics; whatever is accepted writes back unchanged.

use frontrun::marshal::{self, PyVersion};

use proptest::prelude::*;

const VERSIONS: [PyVersion; 6] = [
    PyVersion::new(3, 10),
    PyVersion::new(3, 11),
    PyVersion::new(3, 12),
    PyVersion::new(3, 13),
    PyVersion::new(3, 14),
    PyVersion::new(3, 15),
];

/// Real marshal data to mutate (from `tests/marshal_fixtures.rs`): a list with shared
/// references, a 3.12 code object with nested code, an exception table and shared names,
/// shared 3.14 slices, a 3.15 frozendict.
const SEEDS: &[&str] = &[
    "db05000000db02000000fa1b736861726564206e6f6e2d6964656e74696669657220746578742172020000007201000000da117368617265645f6964656e7469666965727203000000290272030000007202000000",
    "e3020000000100000001000000040000000b000000f3840000008701870287069700740100000000000000007c00ab0100000000000044008f046302670063025d0400007d047c0491028c06040063027d048a06090088018802880666036401840853006302010063027d0477002300740200000000000000002400720c7d05740400000000000000007c05820264007d057e057701770078035900770129024e630000000000000000000000000300000013000000f30e000000950397008902890089016603530029014ea9002903da0162da0163da01787303000000808080fa142f746d702f67656e5f66697874757265732e7079fa083c6c616d6264613e7a13662e3c6c6f63616c733e2e3c6c616d6264613e06000000730d000000f8800098019831986190798000f3000000002903da0572616e6765da0a56616c75654572726f72da0c52756e74696d654572726f722907da016172040000007205000000da026b77da0169da016572060000007307000000206060202020407207000000da01667211000000030000007341000000fa8000dc141998219348d6081d88718a11d2081d8041f002030522dd0f20d00820f9f20500091ef8f406000c16f200010522dc0e1aa001d00821fbf003010522fa7314000000910925049e062a00aa093f03b3073a03ba053f03",
    "db020000003ae901000000e9020000004e3a720100000072020000004e",
    "fdda016be901000000e902000000a901e90300000030",
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Loads must not panic; if it accepts, writing back gives the bytes it consumed (the one
/// thing not kept is a flag bit on a dict's NULL terminator, so skip inputs with 0xb0).
fn check(data: &[u8]) {
    for v in VERSIONS {
        if let Ok((obj, used)) = marshal::loads_prefix(data, v) {
            let out = marshal::dumps(&obj, v).expect("accepted data writes back");
            if !data[..used].contains(&0xb0) {
                assert_eq!(out, &data[..used], "{v}");
            }
            match marshal::dumps_without_refs(&obj, v) {
                Ok(plain) => {
                    marshal::loads(&plain, v).expect("written without refs reads back");
                }
                // A reference back into a list or dict still being read (a cycle, which
                // CPython's marshal accepts too) has no value that could be inlined.
                Err(e) => assert!(matches!(e.kind, marshal::ErrorKind::DanglingRef(_)), "{e}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        check(&data);
    }

    #[test]
    fn bytes_from_type_codes(codes in proptest::collection::vec(
        prop_oneof![
            Just(b')'), Just(b'('), Just(b'['), Just(b'{'), Just(b'<'), Just(b'>'), Just(b'}'),
            Just(b':'), Just(b'c'), Just(b'r'), Just(b'N'), Just(b'0'), Just(b'z'), Just(b'u'),
            Just(b'l'), Just(b'i'), Just(0xa9), Just(0xe3), Just(0xfa), Just(0), Just(1), Just(2), Just(0xff),
        ],
        0..96,
    )) {
        check(&codes);
    }

    #[test]
    fn mutated_real_data(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let mut data = unhex(SEEDS[seed]);
        for (at, byte) in edits {
            let at = at % data.len();
            data[at] = byte;
        }
        let cut = cut % (data.len() + 1);
        check(&data[..cut]);
        check(&data);
    }

    #[test]
    fn pyc_headers(magic in prop_oneof![Just(3439u16), Just(3531), Just(3627), Just(3666), any::<u16>()],
                   flags in 0u32..5, rest in proptest::collection::vec(any::<u8>(), 0..48)) {
        let mut data = magic.to_le_bytes().to_vec();
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(&flags.to_le_bytes());
        data.extend_from_slice(&rest);
        if let Ok(pyc) = marshal::read_pyc(&data) {
            let out = marshal::write_pyc(&pyc).unwrap();
            if !data.contains(&0xb0) {
                prop_assert_eq!(out, data);
            }
        }
    }
}

#[test]
fn seeds_are_valid() {
    for (seed, v) in SEEDS.iter().zip([(3, 12), (3, 12), (3, 14), (3, 15)]) {
        assert!(marshal::loads(&unhex(seed), PyVersion::new(v.0, v.1)).is_ok());
    }
}
