//! Black-box tests of the ONNX checks, with models built by hand from
//! tract-onnx's prost types (no Python needed) and hostile bytes crafted here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use prost::Message;
use riposte_core::task::{Dtype, TaskSpec};
use riposte_eval::onnx::{ModelLimits, OnnxError, check_model};
use tract_onnx::pb;

// ---------------------------------------------------------------- builders

#[derive(Clone, Copy)]
enum Dim {
    Value(i64),
    Param(&'static str),
}
use Dim::{Param, Value};

fn value_info(
    name: &str,
    elem_type: pb::tensor_proto::DataType,
    dims: &[Dim],
) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem_type as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Value(v) => dimension::Value::DimValue(*v),
                                Param(p) => dimension::Value::DimParam((*p).to_owned()),
                            }),
                            ..Dimension::default()
                        })
                        .collect(),
                }),
            })),
            ..pb::TypeProto::default()
        }),
        ..pb::ValueInfoProto::default()
    }
}

fn float_input(dims: &[Dim]) -> pb::ValueInfoProto {
    value_info("input", pb::tensor_proto::DataType::Float, dims)
}

/// A float32 initializer with deterministic small values in raw_data.
fn weights(name: &str, dims: &[i64]) -> pb::TensorProto {
    let count: i64 = dims.iter().product();
    let raw_data = (0..count)
        .flat_map(|i| (((i % 7) as f32 - 3.0) * 0.05).to_le_bytes())
        .collect();
    pb::TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data,
        ..pb::TensorProto::default()
    }
}

fn int_attr(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..pb::AttributeProto::default()
    }
}

fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.to_owned(),
        name: format!(
            "{}_{}",
            op.to_lowercase(),
            outputs.first().copied().unwrap_or("")
        ),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: outputs.iter().map(|s| (*s).to_owned()).collect(),
        attribute,
        ..pb::NodeProto::default()
    }
}

fn opset(domain: &str, version: i64) -> pb::OperatorSetIdProto {
    pb::OperatorSetIdProto {
        domain: domain.to_owned(),
        version,
    }
}

/// Flatten -> Gemm(16 -> 8) -> Relu -> Gemm(8 -> classes) -> Softmax, for
/// inputs of shape [batch, 1, 4, 4].
fn mlp_graph(batch: Dim, classes: i64) -> pb::GraphProto {
    let out_batch = batch;
    pb::GraphProto {
        name: "mlp".to_owned(),
        node: vec![
            node("Flatten", &["input"], &["flat"], vec![int_attr("axis", 1)]),
            node(
                "Gemm",
                &["flat", "w1", "b1"],
                &["h"],
                vec![int_attr("transB", 1)],
            ),
            node("Relu", &["h"], &["hr"], vec![]),
            node(
                "Gemm",
                &["hr", "w2", "b2"],
                &["logits"],
                vec![int_attr("transB", 1)],
            ),
            node(
                "Softmax",
                &["logits"],
                &["probs"],
                vec![int_attr("axis", 1)],
            ),
        ],
        initializer: vec![
            weights("w1", &[8, 16]),
            weights("b1", &[8]),
            weights("w2", &[classes, 8]),
            weights("b2", &[classes]),
        ],
        input: vec![float_input(&[batch, Value(1), Value(4), Value(4)])],
        output: vec![value_info(
            "probs",
            pb::tensor_proto::DataType::Float,
            &[out_batch, Value(classes)],
        )],
        ..pb::GraphProto::default()
    }
}

fn model_of(graph: pb::GraphProto) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        producer_name: "riposte-tests".to_owned(),
        producer_version: "1".to_owned(),
        opset_import: vec![opset("", 13)],
        graph: Some(graph),
        ..pb::ModelProto::default()
    }
}

fn mlp() -> pb::ModelProto {
    model_of(mlp_graph(Param("N"), 3))
}

fn spec() -> TaskSpec {
    TaskSpec {
        input_shape: vec![1, 4, 4],
        dtype: Dtype::Float32,
        value_range: (0.0, 1.0),
        classes: 3,
    }
}

fn check(model: &pb::ModelProto) -> Result<riposte_eval::onnx::ModelReport, OnnxError> {
    check_model(&model.encode_to_vec(), &spec(), &ModelLimits::default())
}

fn err_text(model: &pb::ModelProto) -> String {
    check(model).unwrap_err().to_string()
}

// ---------------------------------------------------------------- accepted models

#[test]
fn valid_mlp_passes_with_a_report() {
    let report = check(&mlp()).unwrap();
    assert_eq!(report.opset, 13);
    assert_eq!(report.ml_opset, None);
    assert_eq!(report.input_name, "input");
    assert_eq!(report.output_name, "probs");
    assert!(report.dynamic_batch);
    assert_eq!(report.node_count, 5);
    // 8*16 + 8 + 3*8 + 3
    assert_eq!(report.parameter_count, 163);
    let counts: Vec<(&str, usize)> = report
        .op_counts
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        counts,
        [("Flatten", 1), ("Gemm", 2), ("Relu", 1), ("Softmax", 1)]
    );
    assert_eq!(report.producer, "riposte-tests 1");
}

#[test]
fn valid_mlp_also_runs_in_tract() {
    // the hand-built model is a real one: tract loads and runs it
    use tract_onnx::prelude::*;
    let bytes = mlp().encode_to_vec();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &*bytes)
        .unwrap()
        .with_input_fact(0, f32::fact([2, 1, 4, 4]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = Tensor::zero::<f32>(&[2, 1, 4, 4]).unwrap();
    let out = model.run(tvec!(input.into_tvalue())).unwrap();
    assert_eq!(out[0].shape(), &[2, 3]);
}

#[test]
fn fixed_batch_of_one_passes() {
    let report = check(&model_of(mlp_graph(Value(1), 3))).unwrap();
    assert!(!report.dynamic_batch);
}

#[test]
fn initializers_listed_as_inputs_are_not_inputs() {
    // ONNX IR < 4 lists every initializer among the graph inputs too
    let mut model = mlp();
    let graph = model.graph.as_mut().unwrap();
    graph.input.push(value_info(
        "w1",
        pb::tensor_proto::DataType::Float,
        &[Value(8), Value(16)],
    ));
    assert_eq!(check(&model).unwrap().input_name, "input");
}

/// What skl2onnx writes for LogisticRegression with zipmap=False: a label
/// output and a probabilities output.
fn sklearn_linear(zipmap: bool) -> pb::ModelProto {
    let floats = |name: &str, values: Vec<f32>| pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Floats as i32,
        floats: values,
        ..pb::AttributeProto::default()
    };
    let ints = |name: &str, values: Vec<i64>| pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values,
        ..pb::AttributeProto::default()
    };
    let string = |name: &str, value: &str| pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: value.as_bytes().to_vec(),
        ..pb::AttributeProto::default()
    };
    let mut classifier = node(
        "LinearClassifier",
        &["input"],
        &["label", "probability_tensor"],
        vec![
            floats("coefficients", vec![0.1; 12]),
            floats("intercepts", vec![0.0; 3]),
            ints("classlabels_ints", vec![0, 1, 2]),
            int_attr("multi_class", 1),
            string("post_transform", "SOFTMAX"),
        ],
    );
    classifier.domain = "ai.onnx.ml".to_owned();
    let mut normalizer = node(
        "Normalizer",
        &["probability_tensor"],
        &["probabilities"],
        vec![string("norm", "L1")],
    );
    normalizer.domain = "ai.onnx.ml".to_owned();
    let mut nodes = vec![classifier, normalizer];
    let mut outputs = vec![
        value_info("label", pb::tensor_proto::DataType::Int64, &[Param("N")]),
        value_info(
            "probabilities",
            pb::tensor_proto::DataType::Float,
            &[Param("N"), Value(3)],
        ),
    ];
    if zipmap {
        let mut zip = node(
            "ZipMap",
            &["probabilities"],
            &["output_probability"],
            vec![ints("classlabels_int64s", vec![0, 1, 2])],
        );
        zip.domain = "ai.onnx.ml".to_owned();
        nodes.push(zip);
        outputs.pop();
        outputs.push(pb::ValueInfoProto {
            name: "output_probability".to_owned(),
            ..pb::ValueInfoProto::default()
        });
    }
    let mut model = model_of(pb::GraphProto {
        name: "sklearn".to_owned(),
        node: nodes,
        input: vec![float_input(&[Param("N"), Value(4)])],
        output: outputs,
        ..pb::GraphProto::default()
    });
    model.opset_import.push(opset("ai.onnx.ml", 1));
    model
}

fn sklearn_spec() -> TaskSpec {
    TaskSpec {
        input_shape: vec![4],
        ..spec()
    }
}

#[test]
fn sklearn_classifier_reports_the_probabilities_output() {
    let bytes = sklearn_linear(false).encode_to_vec();
    let report = check_model(&bytes, &sklearn_spec(), &ModelLimits::default()).unwrap();
    assert_eq!(report.output_name, "probabilities");
    assert_eq!(report.ml_opset, Some(1));
    assert_eq!(report.op_counts.get("LinearClassifier"), Some(&1));
}

#[test]
fn mnist_public_models_pass_when_present() {
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
    let models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
                .collect()
        })
        .unwrap_or_default();
    if models.is_empty() {
        println!("note: no .onnx files under {}: skipped", dir.display());
        return;
    }
    // challenges/mnist-evasion/challenge.toml: input_shape [1, 28, 28], 10 classes
    let mnist = TaskSpec {
        input_shape: vec![1, 28, 28],
        dtype: Dtype::Float32,
        value_range: (0.0, 1.0),
        classes: 10,
    };
    for path in models {
        let bytes = std::fs::read(&path).unwrap();
        let report = check_model(&bytes, &mnist, &ModelLimits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}: {report:?}", path.display());
    }
}

// ---------------------------------------------------------------- refused models

#[test]
fn external_data_is_refused() {
    let mut model = mlp();
    let w1 = &mut model.graph.as_mut().unwrap().initializer[0];
    w1.raw_data.clear();
    w1.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
    w1.external_data = vec![pb::StringStringEntryProto {
        key: "location".to_owned(),
        value: "../../etc/passwd".to_owned(),
    }];
    assert_eq!(
        err_text(&model),
        "external data is not allowed: embed weights in the .onnx file (tensor 'w1' points at '../../etc/passwd')"
    );
    // external_data entries alone are enough, and Constant nodes are checked too
    let mut model = mlp();
    let tensor = pb::TensorProto {
        name: "c".to_owned(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        external_data: vec![pb::StringStringEntryProto {
            key: "location".to_owned(),
            value: "/proc/self/environ".to_owned(),
        }],
        ..pb::TensorProto::default()
    };
    let constant = node(
        "Constant",
        &[],
        &["c"],
        vec![pb::AttributeProto {
            name: "value".to_owned(),
            r#type: pb::attribute_proto::AttributeType::Tensor as i32,
            t: Some(tensor),
            ..pb::AttributeProto::default()
        }],
    );
    model.graph.as_mut().unwrap().node.insert(0, constant);
    assert!(matches!(check(&model), Err(OnnxError::ExternalData { .. })));
}

#[test]
fn zipmap_is_refused() {
    let bytes = sklearn_linear(true).encode_to_vec();
    assert_eq!(
        check_model(&bytes, &sklearn_spec(), &ModelLimits::default())
            .unwrap_err()
            .to_string(),
        "ZipMap is not supported: export with zipmap=False"
    );
}

#[test]
fn control_flow_is_refused() {
    let mut model = mlp();
    model
        .graph
        .as_mut()
        .unwrap()
        .node
        .push(node("Loop", &["probs"], &["looped"], vec![]));
    assert_eq!(
        err_text(&model),
        "operator Loop is not allowed (node 'loop_looped')"
    );
    for op in ["If", "Scan", "RandomNormal", "Multinomial"] {
        let mut model = mlp();
        model
            .graph
            .as_mut()
            .unwrap()
            .node
            .push(node(op, &["probs"], &["x"], vec![]));
        assert!(err_text(&model).starts_with(&format!("operator {op} is not allowed")));
    }
}

#[test]
fn subgraphs_and_functions_are_walked() {
    // a Loop hidden in a graph attribute of an allowed node
    let inner = pb::GraphProto {
        node: vec![node("Loop", &[], &["y"], vec![])],
        ..pb::GraphProto::default()
    };
    let mut model = mlp();
    model.graph.as_mut().unwrap().node[2]
        .attribute
        .push(pb::AttributeProto {
            name: "body".to_owned(),
            r#type: pb::attribute_proto::AttributeType::Graph as i32,
            g: Some(inner),
            ..pb::AttributeProto::default()
        });
    assert!(err_text(&model).starts_with("operator Loop is not allowed"));

    // a Loop inside a model-local function
    let mut model = mlp();
    model.functions.push(pb::FunctionProto {
        name: Some("helper".to_owned()),
        domain: Some("custom".to_owned()),
        node: vec![node("Loop", &[], &["y"], vec![])],
        ..pb::FunctionProto::default()
    });
    assert!(err_text(&model).starts_with("operator Loop is not allowed"));

    // calling a function from an unknown domain
    let mut model = mlp();
    let mut call = node("helper", &["probs"], &["z"], vec![]);
    call.domain = "custom".to_owned();
    model.graph.as_mut().unwrap().node.push(call);
    assert_eq!(
        err_text(&model),
        "operator domain 'custom' (operator helper) is not allowed: expected ai.onnx or ai.onnx.ml"
    );
}

#[test]
fn unknown_ml_operators_name_their_domain() {
    let mut model = sklearn_linear(false);
    model.graph.as_mut().unwrap().node[1].op_type = "Scaler".to_owned();
    let bytes = model.encode_to_vec();
    assert_eq!(
        check_model(&bytes, &sklearn_spec(), &ModelLimits::default())
            .unwrap_err()
            .to_string(),
        "operator Scaler (ai.onnx.ml) is not allowed (node 'normalizer_probabilities')"
    );
}

#[test]
fn huge_declared_shapes_are_refused_without_allocating() {
    let mut model = mlp();
    model
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .push(pb::TensorProto {
            name: "huge".to_owned(),
            dims: vec![1 << 20, 1 << 20],
            data_type: pb::tensor_proto::DataType::Float as i32,
            ..pb::TensorProto::default()
        });
    assert_eq!(
        err_text(&model),
        "tensor 'huge' declares 1099511627776 elements (shape [1048576, 1048576]): the model may hold at most 64000000 parameters"
    );
    let mut model = mlp();
    model.graph.as_mut().unwrap().initializer[1].dims = vec![i64::MAX, i64::MAX, i64::MAX];
    assert!(err_text(&model).contains("whose element count overflows"));
    let mut model = mlp();
    model.graph.as_mut().unwrap().initializer[1].dims = vec![-8];
    assert_eq!(
        err_text(&model),
        "tensor 'b1' has negative dimension -8 in shape [-8]"
    );
}

#[test]
fn tensors_must_hold_the_data_they_declare() {
    let mut model = mlp();
    model.graph.as_mut().unwrap().initializer[0]
        .raw_data
        .truncate(100);
    assert_eq!(
        err_text(&model),
        "tensor 'w1' declares 128 FLOAT values but holds 100 bytes (expected 512)"
    );
    let mut model = mlp();
    let b1 = &mut model.graph.as_mut().unwrap().initializer[1];
    b1.raw_data.clear();
    b1.float_data = vec![0.0; 7];
    assert_eq!(
        err_text(&model),
        "tensor 'b1' declares 8 FLOAT values but holds 7 values"
    );
}

#[test]
fn parameter_and_node_caps_apply() {
    let bytes = mlp().encode_to_vec();
    let tight = ModelLimits {
        max_parameters: 160,
        ..ModelLimits::default()
    };
    assert_eq!(
        check_model(&bytes, &spec(), &tight).unwrap_err(),
        OnnxError::TooManyParameters { limit: 160 }
    );
    let few_nodes = ModelLimits {
        max_nodes: 4,
        ..ModelLimits::default()
    };
    assert_eq!(
        check_model(&bytes, &spec(), &few_nodes).unwrap_err(),
        OnnxError::TooManyNodes { limit: 4 }
    );
    let small = ModelLimits {
        max_bytes: 100,
        ..ModelLimits::default()
    };
    assert!(matches!(
        check_model(&bytes, &spec(), &small),
        Err(OnnxError::TooLarge { .. })
    ));
}

/// ModelProto.graph -> GraphProto.node -> NodeProto.attribute ->
/// AttributeProto.g -> GraphProto.node -> ..., `depth` times, as raw bytes.
fn nested_graph_bytes(depth: usize) -> Vec<u8> {
    // built back to front, then reversed: each wrap prepends a tag and a length
    fn push_varint_reversed(out: &mut Vec<u8>, mut value: usize) {
        let mut bytes = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
        out.extend(bytes.iter().rev());
    }
    let mut reversed = Vec::new();
    // field 6 of AttributeProto (g), 5 of NodeProto (attribute), 1 of GraphProto (node)
    for _ in 0..depth {
        for tag in [0x32u8, 0x2a, 0x0a] {
            let len = reversed.len();
            push_varint_reversed(&mut reversed, len);
            reversed.push(tag);
        }
    }
    let len = reversed.len();
    push_varint_reversed(&mut reversed, len);
    reversed.push(0x3a); // field 7 of ModelProto (graph)
    reversed.reverse();
    reversed
}

#[test]
fn deeply_nested_protobuf_is_an_error_not_a_stack_overflow() {
    // sanity: the builder makes well-formed protobuf at a depth prost accepts
    let shallow = nested_graph_bytes(3);
    let decoded = pb::ModelProto::decode(&*shallow).unwrap();
    assert_eq!(decoded.graph.unwrap().node.len(), 1);

    let deep = nested_graph_bytes(100_000);
    let err = check_model(&deep, &spec(), &ModelLimits::default()).unwrap_err();
    match err {
        OnnxError::Decode { reason } => assert!(reason.contains("recursion limit"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_truncation_of_a_valid_model_is_refused() {
    let bytes = mlp().encode_to_vec();
    for cut in 0..bytes.len() {
        assert!(
            check_model(&bytes[..cut], &spec(), &ModelLimits::default()).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
}

#[test]
fn non_onnx_bytes_are_refused() {
    let limits = ModelLimits::default();
    assert!(matches!(
        check_model(b"", &spec(), &limits),
        Err(OnnxError::NoGraph)
    ));
    assert!(matches!(
        check_model(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", &spec(), &limits),
        Err(OnnxError::Decode { .. })
    ));
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for len in [1usize, 2, 16, 100, 1000, 10_000] {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1442695040888963407);
                    (state >> 56) as u8
                })
                .collect();
            assert!(check_model(&bytes, &spec(), &limits).is_err());
        }
    }
}

#[test]
fn a_model_without_an_opset_is_refused() {
    let mut model = mlp();
    model.opset_import.clear();
    assert_eq!(check(&model).unwrap_err(), OnnxError::NoOpset);
}

#[test]
fn input_must_fit_the_task() {
    // wrong spatial size
    let mut model = mlp();
    model.graph.as_mut().unwrap().input[0] =
        float_input(&[Param("N"), Value(1), Value(4), Value(5)]);
    assert_eq!(
        err_text(&model),
        "input 'input' has shape [N, 1, 4, 5]: expected [N, 1, 4, 4] (N symbolic or 1)"
    );
    // a fixed batch other than 1
    assert!(matches!(
        check(&model_of(mlp_graph(Value(8), 3))),
        Err(OnnxError::InputShape { .. })
    ));
    // wrong rank
    let mut model = mlp();
    model.graph.as_mut().unwrap().input[0] = float_input(&[Param("N"), Value(16)]);
    assert!(matches!(check(&model), Err(OnnxError::InputShape { .. })));
    // wrong element type
    let mut model = mlp();
    model.graph.as_mut().unwrap().input[0] = value_info(
        "input",
        pb::tensor_proto::DataType::Int64,
        &[Param("N"), Value(1), Value(4), Value(4)],
    );
    assert_eq!(
        err_text(&model),
        "input 'input' has element type int64: expected float32"
    );
    // two inputs
    let mut model = mlp();
    model
        .graph
        .as_mut()
        .unwrap()
        .input
        .push(float_input(&[Value(1)]));
    model.graph.as_mut().unwrap().input[1].name = "extra".to_owned();
    assert_eq!(
        err_text(&model),
        "the model has 2 inputs ('input', 'extra'): expected exactly one"
    );
}

#[test]
fn output_must_have_the_class_count() {
    let model = model_of(mlp_graph(Param("N"), 10));
    assert_eq!(
        err_text(&model),
        "no output has type float32 and shape [N, 3]: the model's outputs are 'probs' float32 [N, 10]"
    );
}
