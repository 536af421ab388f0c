//! Black-box tests of the tensor readers: real NumPy files (made by
//! `tests/fixtures/hostile/make_fixtures.py`) and hostile files crafted here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

use std::io::{Cursor, Write};
use std::path::PathBuf;

use riposte_core::task::{Dtype, TaskSpec};
use riposte_eval::tensor::{
    Format, Limits, Tensor, TensorError, read_npy, read_npy_labels, read_npz, read_npz_arrays,
    read_png, read_safetensors, read_tensor, sniff_format, validate_examples,
};

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "hostile",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const BASE: [f32; 6] = [0.0, 0.125, 0.25, 0.375, 0.5, 0.625];

/// A version 1.0 .npy file with the given header dict and payload, padded
/// like NumPy pads it.
fn npy(header_dict: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = header_dict.to_owned();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(payload);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, data) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn small_f32_npy() -> Vec<u8> {
    npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        &f32_bytes(&BASE),
    )
}

// ---------------------------------------------------------------- npy

#[test]
fn npy_reads_numpy_files_of_every_version() {
    for name in ["f32_v1.npy", "f32_v2.npy", "f32_v3.npy"] {
        let t = read_npy(&fixture(name), &Limits::default()).unwrap();
        assert_eq!(t.shape, vec![2, 3], "{name}");
        assert_eq!(t.data, BASE, "{name}");
    }
}

#[test]
fn npy_converts_dtypes_and_byte_orders() {
    let limits = Limits::default();
    assert_eq!(
        read_npy(&fixture("f64_be.npy"), &limits).unwrap().data,
        BASE
    );
    assert_eq!(read_npy(&fixture("f16.npy"), &limits).unwrap().data, BASE);
    assert_eq!(
        read_npy(&fixture("u8.npy"), &limits).unwrap().data,
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
    assert_eq!(
        read_npy(&fixture("i16_be.npy"), &limits).unwrap().data,
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
    let b = read_npy(&fixture("bool.npy"), &limits).unwrap();
    assert_eq!((b.shape, b.data), (vec![3], vec![1.0, 0.0, 1.0]));
    let s = read_npy(&fixture("scalar_f32.npy"), &limits).unwrap();
    assert_eq!((s.shape, s.data), (vec![], vec![2.5]));
}

#[test]
fn npy_labels_are_integers() {
    let limits = Limits::default();
    assert_eq!(
        read_npy_labels(&fixture("labels_i64.npy"), &limits).unwrap(),
        vec![3, 1, 4, 1, 5]
    );
    assert_eq!(
        read_npy_labels(&fixture("labels_u8.npy"), &limits).unwrap(),
        vec![3, 1, 4]
    );
    let err = read_npy_labels(&fixture("f32_v1.npy"), &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "labels have dtype '<f4': expected a 1-D integer array of shape (N,)"
    );
    let two_d = npy(
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 1), }",
        &[0; 16],
    );
    assert_eq!(
        read_npy_labels(&two_d, &limits).unwrap_err().to_string(),
        "labels have shape (2, 1): expected a 1-D integer array of shape (N,)"
    );
    let huge = npy(
        "{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }",
        &u64::MAX.to_le_bytes(),
    );
    assert!(matches!(
        read_npy_labels(&huge, &limits),
        Err(TensorError::BadLabels { .. })
    ));
}

#[test]
fn npy_refuses_object_arrays_without_unpickling() {
    let err = read_npy(&fixture("object.npy"), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "npy header declares dtype '|O' (Python objects): only numeric dtypes are accepted"
    );
}

#[test]
fn npy_refuses_non_numeric_and_fortran_arrays() {
    let limits = Limits::default();
    assert_eq!(
        read_npy(&fixture("fortran.npy"), &limits).unwrap_err(),
        TensorError::FortranOrder
    );
    for (name, what) in [
        ("structured.npy", "a structured record type"),
        ("unicode.npy", "Unicode strings"),
        ("complex.npy", "complex numbers"),
    ] {
        match read_npy(&fixture(name), &limits) {
            Err(TensorError::UnsupportedDtype { what: got, .. }) => assert_eq!(got, what, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn npy_payload_must_match_the_shape_exactly() {
    let err = read_npy(&fixture("truncated.npy"), &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "shape (2, 3) needs 24 bytes but the file has 20"
    );
    let mut long = small_f32_npy();
    long.extend([0, 0, 0, 0]);
    assert!(matches!(
        read_npy(&long, &Limits::default()),
        Err(TensorError::PayloadSize {
            expected: 24,
            actual: 28,
            ..
        })
    ));
    let mnist = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1, 28, 28), }",
        &vec![0u8; 3_135_996],
    );
    assert_eq!(
        read_npy(&mnist, &Limits::default())
            .unwrap_err()
            .to_string(),
        "shape (1000, 1, 28, 28) needs 3136000 bytes but the file has 3135996"
    );
}

#[test]
fn npy_refuses_huge_shapes_before_allocating() {
    let limits = Limits::default();
    let big = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }",
        &[],
    );
    assert_eq!(
        read_npy(&big, &limits).unwrap_err().to_string(),
        format!(
            "shape (1048576, 1048576) has 1099511627776 elements: the limit is {}",
            16 << 20
        )
    );
    let dims = ["4294967296"; 5].join(", ");
    let overflow = npy(
        &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}"),
        &[],
    );
    assert!(matches!(
        read_npy(&overflow, &limits),
        Err(TensorError::ShapeOverflow { .. })
    ));
    let negative = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }",
        &[],
    );
    assert!(matches!(
        read_npy(&negative, &limits),
        Err(TensorError::Malformed { .. })
    ));
}

#[test]
fn npy_header_length_is_capped() {
    // a version 2.0 header claiming 4 GiB
    let mut lying = b"\x93NUMPY\x02\x00".to_vec();
    lying.extend(u32::MAX.to_le_bytes());
    lying.extend(b"{'descr': '<f4'");
    assert_eq!(
        read_npy(&lying, &Limits::default())
            .unwrap_err()
            .to_string(),
        "npy header is 4294967295 bytes: the limit is 10000"
    );
    // a real 10,001-byte header
    let mut padded = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }".to_owned();
    padded.push_str(&" ".repeat(10_001 - padded.len()));
    let mut long = b"\x93NUMPY\x02\x00".to_vec();
    long.extend((padded.len() as u32).to_le_bytes());
    long.extend(padded.as_bytes());
    long.extend([0; 4]);
    assert!(matches!(
        read_npy(&long, &Limits::default()),
        Err(TensorError::HeaderTooLarge { len: 10_001, .. })
    ));
}

#[test]
fn npy_refuses_broken_framing() {
    let limits = Limits::default();
    for bad in [
        &b""[..],
        b"\x93NUMPY",
        b"\x93NUMPY\x01",
        b"\x93NUMPY\x01\x00\x10",
        b"\x93NUMPY\x04\x00\x00\x00",
        b"\x93NUMPY\x01\x00\xff\x00{'descr'",
        b"NUMPY\x01\x00",
    ] {
        assert!(
            matches!(read_npy(bad, &limits), Err(TensorError::Malformed { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn npy_file_size_is_capped() {
    let limits = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    assert_eq!(
        read_npy(&small_f32_npy(), &limits).unwrap_err().to_string(),
        "the file is 152 bytes: the limit is 100 bytes"
    );
}

#[test]
fn npy_never_panics_on_prefixes_or_noise() {
    let limits = Limits::default();
    for name in ["f32_v1.npy", "f64_be.npy", "object.npy", "structured.npy"] {
        let bytes = fixture(name);
        for cut in 0..bytes.len() {
            assert!(
                read_npy(&bytes[..cut], &limits).is_err(),
                "{name} cut at {cut}"
            );
        }
    }
    // flip every byte of a valid header in turn
    let good = small_f32_npy();
    for i in 0..good.len() - 24 {
        let mut bad = good.clone();
        bad[i] ^= 0x5a;
        let _ = read_npy(&bad, &limits);
    }
}

// ---------------------------------------------------------------- npz

#[test]
fn npz_reads_savez_and_savez_compressed() {
    let limits = Limits::default();
    let one = read_npz(&fixture("one_compressed.npz"), None, &limits).unwrap();
    assert_eq!((one.shape, one.data), (vec![2, 3], BASE.to_vec()));
    let two = fixture("two_arrays.npz");
    let x = read_npz(&two, Some("x"), &limits).unwrap();
    assert_eq!(x.data, BASE);
    let y = read_npz(&two, Some("y"), &limits).unwrap();
    assert_eq!((y.shape, y.data), (vec![2], vec![1.0, 2.0]));
    let all = read_npz_arrays(&two, &limits).unwrap();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x", "y"]);
}

#[test]
fn npz_needs_a_name_when_it_holds_several_arrays() {
    let two = fixture("two_arrays.npz");
    assert_eq!(
        read_npz(&two, None, &Limits::default())
            .unwrap_err()
            .to_string(),
        "npz file holds 2 arrays ('x', 'y'): expected exactly one"
    );
    assert_eq!(
        read_npz(&two, Some("z"), &Limits::default())
            .unwrap_err()
            .to_string(),
        "npz file has no array named 'z': it holds 'x', 'y'"
    );
}

#[test]
fn npz_refuses_paths_in_entry_names() {
    let good = small_f32_npy();
    for name in ["a/../b.npy", "../x.npy", "/abs.npy", "dir\\x.npy"] {
        let bytes = zip_of(&[(name, &good)], zip::CompressionMethod::Stored);
        let err = read_npz(&bytes, None, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, TensorError::NpzEntryPath { .. }),
            "{name}: {err}"
        );
    }
    let bytes = zip_of(&[("a/../b.npy", &good)], zip::CompressionMethod::Stored);
    assert_eq!(
        read_npz(&bytes, None, &Limits::default())
            .unwrap_err()
            .to_string(),
        "npz entry 'a/../b.npy' has a path in its name: expected a plain 'name.npy'"
    );
    let bytes = zip_of(
        &[("x.npy", &good), ("notes.txt", b"hi")],
        zip::CompressionMethod::Stored,
    );
    assert!(matches!(
        read_npz(&bytes, Some("x"), &Limits::default()),
        Err(TensorError::NpzEntryName { .. })
    ));
}

#[test]
fn npz_entry_count_is_capped() {
    let good = small_f32_npy();
    let names: Vec<String> = (0..17).map(|i| format!("a{i}.npy")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &good[..])).collect();
    let bytes = zip_of(&entries, zip::CompressionMethod::Stored);
    assert_eq!(
        read_npz(&bytes, Some("a0"), &Limits::default())
            .unwrap_err()
            .to_string(),
        "npz has 17 entries: the limit is 16"
    );
}

#[test]
fn npz_zip_bomb_stops_at_the_uncompressed_limit() {
    // 8 MiB of zeros deflates to ~8 KiB; the limit is 1 MiB
    let mut payload = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2097152,), }",
        &[],
    );
    payload.resize(payload.len() + (8 << 20), 0);
    let bytes = zip_of(&[("bomb.npy", &payload)], zip::CompressionMethod::Deflated);
    assert!(bytes.len() < 64 << 10, "compressed to {}", bytes.len());
    let limits = Limits {
        max_npz_total_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(
        read_npz(&bytes, None, &limits).unwrap_err().to_string(),
        "npz expands beyond 1 MiB uncompressed (limit)"
    );
    // the per-file cap applies to each entry as well
    let limits = Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    assert!(matches!(
        read_npz(&bytes, None, &limits),
        Err(TensorError::FileTooLarge { .. })
    ));
}

#[test]
fn npz_sizes_in_headers_are_not_trusted() {
    let mut payload = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2097152,), }",
        &[],
    );
    payload.resize(payload.len() + (8 << 20), 0);
    let mut bytes = zip_of(&[("bomb.npy", &payload)], zip::CompressionMethod::Deflated);
    // rewrite the declared uncompressed size (local header offset 22, central
    // directory entry offset 24) to claim 100 bytes
    let lie = 100u32.to_le_bytes();
    bytes[22..26].copy_from_slice(&lie);
    let cd = bytes
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    bytes[cd + 24..cd + 28].copy_from_slice(&lie);
    let limits = Limits {
        max_npz_total_bytes: 1 << 20,
        ..Limits::default()
    };
    // either the limiter or the zip reader's own size check stops it
    let err = read_npz(&bytes, None, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            TensorError::NpzTooLarge { .. } | TensorError::Malformed { .. }
        ),
        "{err}"
    );
}

#[test]
fn npz_total_budget_spans_all_entries() {
    let payload = small_f32_npy(); // 128 bytes each
    let bytes = zip_of(
        &[("a.npy", &payload), ("b.npy", &payload)],
        zip::CompressionMethod::Deflated,
    );
    let limits = Limits {
        max_npz_total_bytes: 200,
        ..Limits::default()
    };
    assert!(read_npz(&bytes, Some("b"), &limits).is_ok());
    assert!(matches!(
        read_npz_arrays(&bytes, &limits),
        Err(TensorError::NpzTooLarge { .. })
    ));
}

#[test]
fn npz_refuses_bad_arrays_inside_and_duplicates() {
    let err = read_npz(&fixture("object_inside.npz"), None, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            TensorError::UnsupportedDtype {
                what: "Python objects",
                ..
            }
        ),
        "{err}"
    );
    let good = small_f32_npy();
    // the zip writer refuses duplicate names, so rename "b.npy" to "a.npy" in place
    let mut dup = zip_of(
        &[("a.npy", &good), ("b.npy", &good)],
        zip::CompressionMethod::Stored,
    );
    let at: Vec<usize> = dup
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"b.npy")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 2, "local header and central directory");
    for i in at {
        dup[i] = b'a';
    }
    let err = read_npz(&dup, Some("a"), &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("two entries"), "{err}");
    let truncated_inside = zip_of(
        &[("t.npy", &good[..good.len() - 4])],
        zip::CompressionMethod::Stored,
    );
    assert_eq!(
        read_npz(&truncated_inside, None, &Limits::default())
            .unwrap_err()
            .to_string(),
        "shape (2, 3) needs 24 bytes but the file has 20"
    );
}

#[test]
fn npz_never_panics_on_prefixes() {
    let bytes = fixture("two_arrays.npz");
    for cut in 0..bytes.len() {
        let _ = read_npz(&bytes[..cut], Some("x"), &Limits::default());
    }
    assert!(read_npz(b"PK\x03\x04garbage", None, &Limits::default()).is_err());
}

// ---------------------------------------------------------------- safetensors

fn safetensors_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn safetensors_reads_tensors() {
    let data = f32_bytes(&BASE);
    let file = safetensors_file(
        r#"{"__metadata__":{"by":"test"},"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#,
        &data,
    );
    let t = read_safetensors(&file, None, &Limits::default()).unwrap();
    assert_eq!((t.shape, t.data), (vec![2, 3], BASE.to_vec()));

    let bf16: Vec<u8> = BASE
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let mut both = data.clone();
    both.extend(&bf16);
    let file = safetensors_file(
        r#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[3,2],"data_offsets":[24,36]}}"#,
        &both,
    );
    let b = read_safetensors(&file, Some("b"), &Limits::default()).unwrap();
    assert_eq!((b.shape, b.data), (vec![3, 2], BASE.to_vec()));
    assert!(matches!(
        read_safetensors(&file, None, &Limits::default()),
        Err(TensorError::AmbiguousArray { count: 2, .. })
    ));
}

#[test]
fn safetensors_header_length_is_capped() {
    let mut file = (1u64 << 40).to_le_bytes().to_vec();
    file.extend(b"{}");
    assert_eq!(
        read_safetensors(&file, None, &Limits::default())
            .unwrap_err()
            .to_string(),
        "safetensors header is 1099511627776 bytes: the limit is 1048576"
    );
    let mut short = 100u64.to_le_bytes().to_vec();
    short.extend(b"{}");
    assert!(matches!(
        read_safetensors(&short, None, &Limits::default()),
        Err(TensorError::Malformed { .. })
    ));
}

#[test]
fn safetensors_refuses_bad_offsets_with_the_tensor_named() {
    let data = f32_bytes(&BASE);
    let cases = [
        (
            r#"{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,48]}}"#,
            "tensor 'x' has shape (2, 3) and needs 24 bytes but its data_offsets [0, 48] cover 48",
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"y":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#,
            "tensor 'y' starts at byte 12 but the previous tensor ends at 16",
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[4,28]}}"#,
            "tensor 'x' starts at byte 4 but the previous tensor ends at 0",
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#,
            "the tensors cover 16 bytes but the data section has 24",
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,24]}}"#,
            "whose size overflows",
        ),
    ];
    for (header, expected) in cases {
        let err = read_safetensors(&safetensors_file(header, &data), None, &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{header}\n  got: {err}");
    }
    let not_json = safetensors_file("{not json}", &data);
    assert!(
        read_safetensors(&not_json, None, &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("not valid safetensors JSON")
    );
}

#[test]
fn safetensors_element_cap_applies() {
    let limits = Limits {
        max_elements: 4,
        ..Limits::default()
    };
    let file = safetensors_file(
        r#"{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#,
        &f32_bytes(&BASE),
    );
    assert!(matches!(
        read_safetensors(&file, None, &limits),
        Err(TensorError::TooManyElements { elements: 6, .. })
    ));
}

// ---------------------------------------------------------------- PNG

fn encode_png(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
    }
    out
}

#[test]
fn png_grayscale_and_rgb_become_chw_in_unit_range() {
    let gray = encode_png(
        3,
        2,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[0, 51, 102, 153, 204, 255],
    );
    let t = read_png(&gray, &Limits::default()).unwrap();
    assert_eq!(t.shape, vec![1, 2, 3]);
    assert_eq!(t.data, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);

    // 2 x 1 RGB: red pixel then blue pixel; CHW puts all reds first
    let rgb = encode_png(
        2,
        1,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &[255, 0, 0, 0, 0, 255],
    );
    let t = read_png(&rgb, &Limits::default()).unwrap();
    assert_eq!(t.shape, vec![3, 1, 2]);
    assert_eq!(t.data, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);

    let rgba = encode_png(
        1,
        1,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &[0, 255, 0, 255],
    );
    assert_eq!(
        read_png(&rgba, &Limits::default()).unwrap().data,
        [0.0, 1.0, 0.0]
    );

    let deep = encode_png(
        1,
        1,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &[0x80, 0x00],
    );
    assert_eq!(
        read_png(&deep, &Limits::default()).unwrap().data,
        [32768.0 / 65535.0]
    );

    let bits = encode_png(
        8,
        1,
        png::ColorType::Grayscale,
        png::BitDepth::One,
        &[0b1010_0000],
    );
    assert_eq!(
        read_png(&bits, &Limits::default()).unwrap().data,
        [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn png_refuses_transparency() {
    let rgba = encode_png(
        2,
        1,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &[0, 0, 0, 255, 9, 9, 9, 128],
    );
    assert_eq!(
        read_png(&rgba, &Limits::default()).unwrap_err().to_string(),
        "PNG file is malformed: it has a transparent pixel at x=1, y=0: expected an opaque image"
    );
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    let mut typed = kind.to_vec();
    typed.extend(body);
    out.extend(&typed);
    out.extend(crc32(&typed).to_be_bytes());
    out
}

#[test]
fn png_dimensions_are_checked_before_decoding() {
    // a valid IHDR for 100000 x 100000 RGB, then a tiny IDAT: decoding it
    // would need 30 GB
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut file = b"\x89PNG\r\n\x1a\n".to_vec();
    file.extend(chunk(b"IHDR", &ihdr));
    file.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    file.extend(chunk(b"IEND", &[]));
    assert_eq!(
        read_png(&file, &Limits::default()).unwrap_err().to_string(),
        "PNG declares 100000 x 100000 pixels: the limit is 4096 x 4096"
    );
}

#[test]
fn png_never_panics_on_prefixes() {
    let rgb = encode_png(4, 4, png::ColorType::Rgb, png::BitDepth::Eight, &[7; 48]);
    // without its 12-byte IEND chunk the image is still complete
    for cut in 0..rgb.len() {
        let result = read_png(&rgb[..cut], &Limits::default());
        if cut < rgb.len() - 12 {
            assert!(result.is_err(), "cut at {cut}");
        }
    }
}

// ---------------------------------------------------------------- sniffing

#[test]
fn read_tensor_recognises_formats_by_content() {
    let limits = Limits::default();
    let npy_bytes = small_f32_npy();
    let npz_bytes = fixture("one_compressed.npz");
    let st = safetensors_file(
        r#"{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#,
        &f32_bytes(&BASE),
    );
    let png_bytes = encode_png(
        1,
        1,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[255],
    );
    assert_eq!(sniff_format(&npy_bytes, None).unwrap(), Format::Npy);
    assert_eq!(sniff_format(&npz_bytes, None).unwrap(), Format::Npz);
    assert_eq!(sniff_format(&st, None).unwrap(), Format::Safetensors);
    assert_eq!(sniff_format(&png_bytes, None).unwrap(), Format::Png);
    // the file name does not matter, the content does
    for bytes in [&npy_bytes, &npz_bytes, &st] {
        let t = read_tensor(bytes, Some("misnamed.png"), &limits).unwrap();
        assert_eq!(t.data, BASE);
    }
    assert_eq!(
        read_tensor(&png_bytes, None, &limits).unwrap().shape,
        vec![1, 1, 1]
    );
    assert_eq!(
        read_tensor(b"GIF89a....", Some("x.gif"), &limits)
            .unwrap_err()
            .to_string(),
        "'x.gif' is not a recognised tensor file: expected .npy, .npz, .safetensors or .png content (recognised by its first bytes)"
    );
}

#[test]
fn readers_survive_random_bytes() {
    // a fixed linear congruential generator: deterministic noise
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let limits = Limits::default();
    for len in [0usize, 1, 7, 8, 9, 64, 300, 4096] {
        for prefix in [
            &b""[..],
            b"\x93NUMPY\x01\x00",
            b"PK\x03\x04",
            b"\x89PNG\r\n\x1a\n",
            b"\x10\0\0\0\0\0\0\0{",
        ] {
            let mut bytes = prefix.to_vec();
            for _ in 0..len {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                bytes.push((state >> 56) as u8);
            }
            let _ = read_tensor(&bytes, None, &limits);
        }
    }
}

// ---------------------------------------------------------------- validation

fn mnist_spec() -> TaskSpec {
    TaskSpec {
        input_shape: vec![1, 2, 2],
        dtype: Dtype::Float32,
        value_range: (0.0, 1.0),
        classes: 10,
    }
}

fn batch(data: Vec<f32>) -> Tensor {
    Tensor::new(vec![data.len() / 4, 1, 2, 2], data).unwrap()
}

#[test]
fn validate_accepts_a_good_batch() {
    validate_examples(
        &batch(vec![0.0, 0.5, 1.0, 0.25, 0.1, 0.2, 0.3, 0.4]),
        &mnist_spec(),
    )
    .unwrap();
}

#[test]
fn validate_checks_the_shape() {
    let t = Tensor::new(vec![2, 4], vec![0.0; 8]).unwrap();
    assert_eq!(
        validate_examples(&t, &mnist_spec())
            .unwrap_err()
            .to_string(),
        "shape (2, 4) does not match the task: expected (N, 1, 2, 2)"
    );
    let empty = Tensor::new(vec![0, 1, 2, 2], vec![]).unwrap();
    assert!(matches!(
        validate_examples(&empty, &mnist_spec()),
        Err(TensorError::ShapeMismatch { .. })
    ));
}

#[test]
fn validate_reports_the_first_non_finite_value() {
    let mut data = vec![0.5; 12];
    data[7] = f32::NAN; // example 1, position (0, 1, 1)
    data[9] = f32::INFINITY;
    assert_eq!(
        validate_examples(&batch(data), &mnist_spec())
            .unwrap_err()
            .to_string(),
        "example 1 has NaN at position (0, 1, 1): expected finite numbers"
    );
    let mut data = vec![0.5; 12];
    data[10] = f32::NEG_INFINITY; // example 2, position (0, 1, 0)
    assert_eq!(
        validate_examples(&batch(data), &mnist_spec())
            .unwrap_err()
            .to_string(),
        "example 2 has -inf at position (0, 1, 0): expected finite numbers"
    );
}

#[test]
fn validate_reports_values_out_of_range() {
    let mut data = vec![0.5; 8];
    data[5] = 1.25;
    assert_eq!(
        validate_examples(&batch(data), &mnist_spec())
            .unwrap_err()
            .to_string(),
        "example 1 has value 1.25 at position (0, 0, 1): values must lie in [0, 1]"
    );
    let mut data = vec![0.5; 8];
    data[0] = -0.001;
    assert!(matches!(
        validate_examples(&batch(data), &mnist_spec()),
        Err(TensorError::OutOfRange { example: 0, .. })
    ));
}

#[test]
fn validate_uint8_tasks_need_whole_numbers() {
    let spec = TaskSpec {
        dtype: Dtype::Uint8,
        value_range: (0.0, 255.0),
        ..mnist_spec()
    };
    validate_examples(&batch(vec![0.0, 1.0, 254.0, 255.0]), &spec).unwrap();
    assert_eq!(
        validate_examples(&batch(vec![0.0, 1.5, 254.0, 255.0]), &spec)
            .unwrap_err()
            .to_string(),
        "example 0 has value 1.5 at position (0, 0, 1): the task's dtype is uint8, expected whole numbers"
    );
}

#[test]
fn mnist_public_files_read_when_present() {
    let dir: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "challenges",
        "mnist-evasion",
        "public",
    ]
    .iter()
    .collect();
    let (Ok(x), Ok(y)) = (
        std::fs::read(dir.join("eval_x.npy")),
        std::fs::read(dir.join("eval_y.npy")),
    ) else {
        println!(
            "note: no eval_x.npy / eval_y.npy under {}: skipped",
            dir.display()
        );
        return;
    };
    let limits = Limits::default();
    let inputs = read_tensor(&x, Some("eval_x.npy"), &limits).unwrap();
    // challenges/mnist-evasion/challenge.toml: input_shape [1, 28, 28], values in [0, 1]
    let spec = TaskSpec {
        input_shape: vec![1, 28, 28],
        dtype: Dtype::Float32,
        value_range: (0.0, 1.0),
        classes: 10,
    };
    validate_examples(&inputs, &spec).unwrap();
    let labels = read_npy_labels(&y, &limits).unwrap();
    assert_eq!(labels.len(), inputs.num_examples());
    assert!(labels.iter().all(|l| (0..10).contains(l)));
    if let Ok(weights) = std::fs::read(dir.join("mlp_weights.npz")) {
        let arrays = read_npz_arrays(&weights, &limits).unwrap();
        assert!(!arrays.is_empty());
    }
}
