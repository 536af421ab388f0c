//! A tiny built-in model the host runs before it locks itself down.
//!
//! tract does some of its set-up lazily the first time a model runs: tract-linalg
//! reads CPU cache sizes and topology from `/sys`, detects the instruction set and
//! builds its kernel tables. Once the sandbox is in force those files cannot be
//! opened (seccomp would kill the host), so the host first runs this model, built in
//! code from the same operators classifiers use (Conv, Relu, Flatten, Gemm,
//! MatMul, Softmax), with the same batch plans the real model will get. Only then
//! does it lock down and parse the untrusted model.

use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_linalg;

use super::child;
use super::protocol::InitConfig;

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;

/// Runs the built-in model through every plan size of `config`; an error means
/// tract itself is broken, not any participant's model.
pub(crate) fn warm_up(config: &InitConfig) -> TractResult<()> {
    tract_linalg::cache::cache_info();
    tract_linalg::cache::last_level_cache();
    tract_linalg::isa::native();
    let warm_config = InitConfig {
        input_shape: vec![1, 4, 4],
        classes: Some(2),
        output: None,
        shared_buffer: None,
        ..config.clone()
    };
    let model = tiny_classifier();
    child::load_proto(&warm_config, &model)?;
    // Its convolution makes the built-in model keep only its batch-1 plan (see
    // `child::load_proto`): warm the bigger plans a convolution-free model gets too.
    let bigger: Vec<usize> = config
        .batch_sizes
        .iter()
        .copied()
        .filter(|s| *s > 1)
        .collect();
    if !bigger.is_empty() {
        let bigger_config = InitConfig {
            batch_sizes: bigger,
            ..warm_config
        };
        child::load_proto(&bigger_config, &model)?;
    }
    Ok(())
}

/// `[N,1,4,4] -> Conv(2, 3x3, pad 1) -> Relu -> Flatten -> Gemm(32x8) -> MatMul(8x2)
/// -> Softmax`.
fn tiny_classifier() -> pb::ModelProto {
    let ramp = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i % 7) as f32 - 3.0) * scale)
            .collect::<Vec<_>>()
    };
    let graph = pb::GraphProto {
        name: "riposte_warm_up".into(),
        node: vec![
            node(
                "Conv",
                &["x", "conv_w", "conv_b"],
                "conv",
                vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
            ),
            node("Relu", &["conv"], "relu", vec![]),
            node("Flatten", &["relu"], "flat", vec![int("axis", 1)]),
            node(
                "Gemm",
                &["flat", "gemm_w", "gemm_b"],
                "hidden",
                vec![int("transB", 1)],
            ),
            node("MatMul", &["hidden", "out_w"], "logits", vec![]),
            node(
                "Softmax",
                &["logits"],
                "probabilities",
                vec![int("axis", 1)],
            ),
        ],
        initializer: vec![
            tensor("conv_w", &[2, 1, 3, 3], ramp(18, 0.1)),
            tensor("conv_b", &[2], vec![0.1, -0.1]),
            tensor("gemm_w", &[8, 32], ramp(256, 0.05)),
            tensor("gemm_b", &[8], ramp(8, 0.01)),
            tensor("out_w", &[8, 2], ramp(16, 0.2)),
        ],
        input: vec![value_info("x", &[None, Some(1), Some(4), Some(4)])],
        output: vec![value_info("probabilities", &[None, Some(2)])],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 7,
        producer_name: "riposte".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[i64], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: data,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_model_loads_and_runs_every_plan() {
        let config = InitConfig {
            version: super::super::protocol::PROTOCOL_VERSION,
            input_shape: vec![],
            classes: None,
            output: None,
            batch_sizes: vec![1, 16, 256],
            max_batch: 256,
            max_model_bytes: 1 << 20,
            memory_bytes: 1 << 30,
            cpu_load_secs: 60,
            cpu_per_request_secs: 10,
            cpu_lifetime_secs: 3600,
            shared_buffer: None,
        };
        warm_up(&config).unwrap();
    }
}
