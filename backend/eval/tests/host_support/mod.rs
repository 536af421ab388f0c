//! Hand-built ONNX models and helpers shared by the host and attack tests and the bench.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

pub const FLOAT: i32 = 1;
pub const INT64: i32 = 7;

/// The eval crate's host binary (probes enabled when asked).
pub fn host_command(probes: bool) -> riposte_eval::host::HostCommand {
    let cmd = riposte_eval::host::HostCommand::new(
        env!("CARGO_BIN_EXE_riposte-model-host"),
        Vec::<String>::new(),
    );
    if probes {
        cmd.env("RIPOSTE_MODEL_HOST_TEST_PROBES", "1")
    } else {
        cmd
    }
}

pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

pub fn mnist_dir() -> PathBuf {
    repo_root().join("challenges/mnist-evasion/public")
}

/// Deterministic pseudo-random floats in [-scale, scale).
pub fn weights(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

pub fn tensor_f32(name: &str, dims: &[i64], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: data,
        ..Default::default()
    }
}

pub fn tensor_i64(name: &str, dims: &[i64], data: Vec<i64>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: INT64,
        int64_data: data,
        ..Default::default()
    }
}

pub fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

pub fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn model(graph: pb::GraphProto, opset: i64) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 7,
        producer_name: "riposte-tests".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A small MNIST-shaped MLP: [N,1,28,28] -> Flatten -> Gemm(784x32) -> Relu -> Gemm(32x10).
pub fn tiny_mlp() -> Vec<u8> {
    let graph = pb::GraphProto {
        name: "tiny_mlp".into(),
        node: vec![
            node("Flatten", &["input"], "flat", vec![attr_int("axis", 1)]),
            node(
                "Gemm",
                &["flat", "w1", "b1"],
                "h",
                vec![attr_int("transB", 1)],
            ),
            node("Relu", &["h"], "r", vec![]),
            node(
                "Gemm",
                &["r", "w2", "b2"],
                "logits",
                vec![attr_int("transB", 1)],
            ),
        ],
        initializer: vec![
            tensor_f32("w1", &[32, 784], weights(32 * 784, 1, 0.1)),
            tensor_f32("b1", &[32], weights(32, 2, 0.1)),
            tensor_f32("w2", &[10, 32], weights(320, 3, 0.5)),
            tensor_f32("b2", &[10], weights(10, 4, 0.1)),
        ],
        input: vec![value_info("input", &[None, Some(1), Some(28), Some(28)])],
        output: vec![value_info("logits", &[None, Some(10)])],
        ..Default::default()
    };
    model(graph, 13)
}

/// Input [N,1]; broadcasts every example to `width` floats at run time, then sums them.
/// Needs `4 * width` bytes per example: a batch big enough exceeds any memory limit.
pub fn memory_hog(width: i64) -> Vec<u8> {
    let graph = pb::GraphProto {
        name: "memory_hog".into(),
        node: vec![
            node("Expand", &["input", "shape"], "wide", vec![]),
            node("Sin", &["wide"], "wavy", vec![]),
            node(
                "ReduceSum",
                &["wavy"],
                "sum",
                vec![attr_ints("axes", &[1]), attr_int("keepdims", 1)],
            ),
            node(
                "Concat",
                &["sum", "input"],
                "logits",
                vec![attr_int("axis", 1)],
            ),
        ],
        initializer: vec![tensor_i64("shape", &[2], vec![1, width])],
        input: vec![value_info("input", &[None, Some(1)])],
        output: vec![value_info("logits", &[None, Some(2)])],
        ..Default::default()
    };
    model(graph, 11)
}

/// Input [N,256]; `depth` dense 256x256 layers with ReLU between, then 2 classes.
/// About `depth * 131k` floating-point operations per example.
pub fn slow_model(depth: usize) -> Vec<u8> {
    let mut nodes = vec![];
    let mut inits = vec![];
    let mut prev = "input".to_string();
    for i in 0..depth {
        let m = format!("m{i}");
        let r = format!("r{i}");
        nodes.push(node("MatMul", &[&prev, "w"], &m, vec![]));
        nodes.push(node("Relu", &[&m], &r, vec![]));
        prev = r;
    }
    // One shared weight matrix keeps the model small however deep it is.
    inits.push(tensor_f32(
        "w",
        &[256, 256],
        weights(256 * 256, 100, 0.0625),
    ));
    nodes.push(node("MatMul", &[&prev, "wout"], "logits", vec![]));
    inits.push(tensor_f32("wout", &[256, 2], weights(512, 7, 0.1)));
    let graph = pb::GraphProto {
        name: "slow".into(),
        node: nodes,
        initializer: inits,
        input: vec![value_info("input", &[None, Some(256)])],
        output: vec![value_info("logits", &[None, Some(2)])],
        ..Default::default()
    };
    model(graph, 13)
}

/// Minimal .npy reader for the tests (little-endian f32 or i64, C order).
pub fn read_npy(path: &Path) -> Option<(Vec<usize>, NpyData)> {
    let bytes = std::fs::read(path).ok()?;
    if !bytes.starts_with(b"\x93NUMPY") {
        return None;
    }
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).ok()?;
    let shape_src = header
        .split("'shape':")
        .nth(1)?
        .split('(')
        .nth(1)?
        .split(')')
        .next()?;
    let shape: Vec<usize> = shape_src
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let body = &bytes[start + header_len..];
    let data = if header.contains("'<f4'") {
        NpyData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    } else if header.contains("'<i8'") {
        NpyData::I64(
            body.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    } else {
        return None;
    };
    Some((shape, data))
}

pub enum NpyData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl NpyData {
    pub fn f32(self) -> Vec<f32> {
        match self {
            NpyData::F32(v) => v,
            NpyData::I64(v) => v.into_iter().map(|x| x as f32).collect(),
        }
    }
    pub fn i64(self) -> Vec<i64> {
        match self {
            NpyData::I64(v) => v,
            NpyData::F32(v) => v.into_iter().map(|x| x as i64).collect(),
        }
    }
}

/// MNIST eval inputs and labels, when the challenge artifacts exist.
pub fn mnist_eval() -> Option<(Vec<f32>, Vec<i64>)> {
    let (_, x) = read_npy(&mnist_dir().join("eval_x.npy"))?;
    let (_, y) = read_npy(&mnist_dir().join("eval_y.npy"))?;
    Some((x.f32(), y.i64()))
}

/// In-process tract reference: logits of `n` examples of `shape` (without batch).
pub fn tract_logits(model_bytes: &[u8], shape: &[usize], data: &[f32], n: usize) -> Vec<f32> {
    use tract_onnx::prelude::*;
    let mut full = vec![n];
    full.extend_from_slice(shape);
    let plan = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(model_bytes))
        .unwrap()
        .with_input_fact(0, f32::fact(full.clone()).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = Tensor::from_shape::<f32>(&full, data).unwrap();
    let out = plan.run(tvec!(input.into())).unwrap();
    let t = out[0].cast_to::<f32>().unwrap();
    t.try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}
