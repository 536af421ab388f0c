//! Checks on an ONNX model before it ever runs.
//!
//! [`check_model`] decodes the protobuf with tract-onnx's prost types and
//! refuses, with a message fit for the submitter, anything the model host
//! should never see:
//!
//! - files over [`ModelLimits::max_bytes`], and protobuf that is not an ONNX
//!   model (prost caps message nesting at 100 levels, so a deeply nested file
//!   is an error, not a stack overflow);
//! - tensors whose data lives outside the file (`data_location = EXTERNAL` or
//!   `external_data` entries): the host must never open a path a model names;
//! - operators outside an allowlist of what `torch.onnx.export` and skl2onnx
//!   (with `zipmap=False`) emit for classifiers, in every graph, subgraph and
//!   model-local function: no control flow (Loop, If, Scan), no random
//!   operators, no unknown domains, no ZipMap;
//! - more parameters than [`ModelLimits::max_parameters`], counted from the
//!   declared shapes with checked arithmetic (a 2^40-element declaration is
//!   refused without allocating), and tensors whose data does not match their
//!   declared shape;
//! - an interface that does not fit the task: exactly one float32 input of
//!   shape `[N, ..input_shape]`, and an output of shape `[N, classes]`.
//!
//! The [`ModelReport`] says which output holds the class scores, which matters
//! for skl2onnx classifiers (a label output and a probabilities output).
//!
//! Error policy: every refusal is an [`OnnxError`]; nothing here panics on any
//! input.

use std::collections::BTreeMap;

use prost::Message;
use riposte_core::task::TaskSpec;
use tract_onnx::pb;

/// Hard limits for [`check_model`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLimits {
    /// Largest `.onnx` file accepted, in bytes.
    pub max_bytes: usize,
    /// Most parameters (elements of all initializers and constant tensors).
    pub max_parameters: u64,
    /// Most nodes, summed over every graph, subgraph and function.
    pub max_nodes: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            max_parameters: 64_000_000,
            max_nodes: 20_000,
        }
    }
}

/// What [`check_model`] learnt about an accepted model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelReport {
    /// Version of the default (`ai.onnx`) opset the model imports.
    pub opset: i64,
    /// Version of the `ai.onnx.ml` opset, when imported.
    pub ml_opset: Option<i64>,
    /// How many nodes use each operator, over all graphs.
    pub op_counts: BTreeMap<String, usize>,
    /// Total number of nodes.
    pub node_count: usize,
    /// Elements in all initializers and constant tensors.
    pub parameter_count: u64,
    /// Name of the model's single input.
    pub input_name: String,
    /// Name of the output holding the `[N, classes]` scores.
    pub output_name: String,
    /// Whether the batch dimension is symbolic (`false`: fixed at 1).
    pub dynamic_batch: bool,
    /// Producer name and version as the exporter wrote them (e.g. "pytorch 2.4.0").
    pub producer: String,
}

/// Why a model was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnnxError {
    /// The file is larger than [`ModelLimits::max_bytes`].
    #[error("the model is {size} bytes: the limit is {limit} bytes")]
    TooLarge {
        /// File size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not a decodable ONNX protobuf.
    #[error("the file is not a valid ONNX model: {reason}")]
    Decode {
        /// The decoder's complaint.
        reason: String,
    },
    /// No main graph.
    #[error("the model has no graph: expected an exported ONNX model")]
    NoGraph,
    /// No default-domain opset import.
    #[error("the model imports no ai.onnx opset: expected an opset_import for the default domain")]
    NoOpset,
    /// A tensor stored outside the file.
    #[error(
        "external data is not allowed: embed weights in the .onnx file (tensor '{tensor}' points at '{location}')"
    )]
    ExternalData {
        /// Tensor name.
        tensor: String,
        /// Where it says its data is.
        location: String,
    },
    /// A ZipMap node (skl2onnx's default for classifiers).
    #[error("ZipMap is not supported: export with zipmap=False")]
    ZipMap,
    /// An operator outside the allowlist.
    #[error("operator {op}{domain} is not allowed (node '{node}')")]
    ForbiddenOp {
        /// The operator type.
        op: String,
        /// " (domain)" for non-default domains, else empty.
        domain: String,
        /// The node's name or index.
        node: String,
    },
    /// An operator from a domain other than ai.onnx and ai.onnx.ml.
    #[error(
        "operator domain '{domain}' (operator {op}) is not allowed: expected ai.onnx or ai.onnx.ml"
    )]
    UnknownDomain {
        /// The domain.
        domain: String,
        /// The operator type.
        op: String,
    },
    /// More nodes than [`ModelLimits::max_nodes`].
    #[error("the model has more than {limit} nodes (limit)")]
    TooManyNodes {
        /// The limit.
        limit: usize,
    },
    /// A tensor whose declaration or data is inconsistent.
    #[error("tensor '{tensor}' {problem}")]
    BadTensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong with it.
        problem: String,
    },
    /// One tensor alone exceeds the parameter cap.
    #[error(
        "tensor '{tensor}' declares {elements} elements (shape {shape}): the model may hold at most {limit} parameters"
    )]
    TensorTooLarge {
        /// Tensor name.
        tensor: String,
        /// Its element count.
        elements: u128,
        /// Its declared shape.
        shape: String,
        /// The limit.
        limit: u64,
    },
    /// The tensors together exceed the parameter cap.
    #[error("the model holds more than {limit} parameters (limit)")]
    TooManyParameters {
        /// The limit.
        limit: u64,
    },
    /// Not exactly one (non-initializer) input.
    #[error("the model has {count} inputs ({names}): expected exactly one")]
    InputCount {
        /// How many.
        count: usize,
        /// Their names.
        names: String,
    },
    /// The input is not float32.
    #[error("input '{name}' has element type {found}: expected float32")]
    InputType {
        /// Input name.
        name: String,
        /// Its element type.
        found: String,
    },
    /// The input shape does not fit the task.
    #[error("input '{name}' has shape {found}: expected {expected} (N symbolic or 1)")]
    InputShape {
        /// Input name.
        name: String,
        /// Its declared shape.
        found: String,
        /// The task's shape.
        expected: String,
    },
    /// No output has the `[N, classes]` float shape.
    #[error(
        "no output has type float32 and shape [N, {classes}]: the model's outputs are {outputs}"
    )]
    NoScoresOutput {
        /// The task's class count.
        classes: usize,
        /// The outputs, with types and shapes.
        outputs: String,
    },
}

/// Operators of the default domain (`""` / `ai.onnx`) that the model host
/// runs: what torch.onnx.export emits for MLPs, CNNs, ResNets and small
/// transformers, all supported by tract. Control flow, random and
/// data-dependent-shape operators are deliberately absent.
const ONNX_OPS: &[&str] = &[
    "Abs",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "CastLike",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "DepthToSpace",
    "Div",
    "Dropout",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "LRN",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mish",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "Pad",
    "Pow",
    "PRelu",
    "Range",
    "Reciprocal",
    "ReduceL2",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "Round",
    "Selu",
    "Shape",
    "Sigmoid",
    "Sign",
    "Sin",
    "Size",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Where",
];

/// Operators of `ai.onnx.ml` that skl2onnx emits for linear and tree
/// classifiers and that tract runs.
const ML_OPS: &[&str] = &[
    "ArrayFeatureExtractor",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "TreeEnsembleClassifier",
];

const ML_DOMAIN: &str = "ai.onnx.ml";

/// Checks an ONNX model against the limits and the task before it is loaded
/// anywhere, and reports what it found.
pub fn check_model(
    bytes: &[u8],
    spec: &TaskSpec,
    limits: &ModelLimits,
) -> Result<ModelReport, OnnxError> {
    if bytes.len() > limits.max_bytes {
        return Err(OnnxError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_bytes as u64,
        });
    }
    // prost's decoder refuses messages nested deeper than 100 levels
    // (`no-recursion-limit` is not enabled anywhere in the build).
    let model = pb::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
        reason: decode_reason(&e),
    })?;
    let graph = model.graph.as_ref().ok_or(OnnxError::NoGraph)?;

    let mut opset = None;
    let mut ml_opset = None;
    for import in &model.opset_import {
        match import.domain.as_str() {
            "" | "ai.onnx" => opset = Some(import.version),
            ML_DOMAIN => ml_opset = Some(import.version),
            _ => {}
        }
    }
    let opset = opset.ok_or(OnnxError::NoOpset)?;

    let mut walk = Walk {
        limits,
        op_counts: BTreeMap::new(),
        node_count: 0,
        parameters: 0,
        graphs: vec![graph],
    };
    for info in &model.training_info {
        walk.graphs.extend(info.initialization.as_ref());
        walk.graphs.extend(info.algorithm.as_ref());
    }
    for function in &model.functions {
        walk.nodes(&function.node)?;
    }
    while let Some(g) = walk.graphs.pop() {
        walk.graph(g)?;
    }

    let (input_name, dynamic_batch) = check_input(graph, spec)?;
    let output_name = pick_output(graph, spec.classes)?;
    Ok(ModelReport {
        opset,
        ml_opset,
        op_counts: walk.op_counts,
        node_count: walk.node_count,
        parameter_count: walk.parameters,
        input_name,
        output_name,
        dynamic_batch,
        producer: format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_owned(),
    })
}

/// The name of the output [`check_model`] would pick for `classes` classes, without the other
/// checks: what the model host is told to run for a model already checked (an
/// accepted defense, an organizer's target).
pub fn scores_output(bytes: &[u8], classes: usize) -> Result<String, OnnxError> {
    let model = pb::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
        reason: decode_reason(&e),
    })?;
    let graph = model.graph.as_ref().ok_or(OnnxError::NoGraph)?;
    pick_output(graph, classes)
}

/// prost's message lists every enclosing field ("ModelProto.graph:
/// GraphProto.node: ..."), which for a hostile file can run to kilobytes: keep
/// it whole when short, else only the final description.
fn decode_reason(error: &prost::DecodeError) -> String {
    let full = error.to_string();
    let full = full
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&full);
    if full.len() <= 160 {
        return format!("protobuf decoding failed ({full})");
    }
    let description = full.rsplit(": ").next().unwrap_or(full);
    format!("protobuf decoding failed ({})", quote(description))
}

/// A name from a hostile file, safe to quote: control characters escaped, at
/// most 80 characters.
fn quote(name: &str) -> String {
    let escaped: String = name.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() > 80 {
        let cut: String = escaped.chars().take(77).collect();
        format!("{cut}...")
    } else {
        escaped
    }
}

/// Traversal state: an explicit stack of graphs, so subgraph depth never
/// becomes Rust stack depth.
struct Walk<'m> {
    limits: &'m ModelLimits,
    op_counts: BTreeMap<String, usize>,
    node_count: usize,
    parameters: u64,
    graphs: Vec<&'m pb::GraphProto>,
}

impl<'m> Walk<'m> {
    fn graph(&mut self, graph: &'m pb::GraphProto) -> Result<(), OnnxError> {
        for tensor in &graph.initializer {
            self.tensor(tensor, &tensor.name)?;
        }
        for sparse in &graph.sparse_initializer {
            self.sparse(sparse)?;
        }
        self.nodes(&graph.node)
    }

    fn nodes(&mut self, nodes: &'m [pb::NodeProto]) -> Result<(), OnnxError> {
        for (index, node) in nodes.iter().enumerate() {
            self.node_count += 1;
            if self.node_count > self.limits.max_nodes {
                return Err(OnnxError::TooManyNodes {
                    limit: self.limits.max_nodes,
                });
            }
            let node_label = if node.name.is_empty() {
                format!("#{index}")
            } else {
                quote(&node.name)
            };
            check_op(node, &node_label)?;
            *self.op_counts.entry(node.op_type.clone()).or_insert(0) += 1;
            for attribute in &node.attribute {
                let label = format!("{node_label}.{}", quote(&attribute.name));
                if let Some(t) = &attribute.t {
                    self.tensor(t, &label)?;
                }
                for t in &attribute.tensors {
                    self.tensor(t, &label)?;
                }
                if let Some(s) = &attribute.sparse_tensor {
                    self.sparse(s)?;
                }
                for s in &attribute.sparse_tensors {
                    self.sparse(s)?;
                }
                self.graphs.extend(attribute.g.as_ref());
                self.graphs.extend(attribute.graphs.iter());
            }
        }
        Ok(())
    }

    fn sparse(&mut self, sparse: &'m pb::SparseTensorProto) -> Result<(), OnnxError> {
        // the dense shape says how big the tensor becomes once densified
        let name = sparse
            .values
            .as_ref()
            .map(|v| v.name.as_str())
            .unwrap_or("(sparse)");
        let dense = element_count(name, &sparse.dims)?;
        self.charge(name, dense, &sparse.dims)?;
        for part in [&sparse.values, &sparse.indices].into_iter().flatten() {
            self.check_storage(part, name)?;
            check_data_size(part, name, element_count(name, &part.dims)?)?;
        }
        Ok(())
    }

    fn tensor(&mut self, tensor: &pb::TensorProto, fallback: &str) -> Result<(), OnnxError> {
        let name = if tensor.name.is_empty() {
            fallback
        } else {
            tensor.name.as_str()
        };
        self.check_storage(tensor, name)?;
        let elements = element_count(name, &tensor.dims)?;
        self.charge(name, elements, &tensor.dims)?;
        check_data_size(tensor, name, elements)
    }

    fn check_storage(&self, tensor: &pb::TensorProto, name: &str) -> Result<(), OnnxError> {
        let external =
            tensor.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
        if external || !tensor.external_data.is_empty() {
            let location = tensor
                .external_data
                .iter()
                .find(|e| e.key == "location")
                .map(|e| quote(&e.value))
                .unwrap_or_else(|| "an external file".to_owned());
            return Err(OnnxError::ExternalData {
                tensor: quote(name),
                location,
            });
        }
        if tensor.segment.is_some() {
            return Err(OnnxError::BadTensor {
                tensor: quote(name),
                problem: "is segmented: expected a whole tensor".to_owned(),
            });
        }
        Ok(())
    }

    fn charge(&mut self, name: &str, elements: u128, dims: &[i64]) -> Result<(), OnnxError> {
        let limit = self.limits.max_parameters;
        if elements > u128::from(limit) {
            return Err(OnnxError::TensorTooLarge {
                tensor: quote(name),
                elements,
                shape: fmt_dims(dims),
                limit,
            });
        }
        // elements <= limit, a u64
        self.parameters = self.parameters.saturating_add(elements as u64);
        if self.parameters > limit {
            return Err(OnnxError::TooManyParameters { limit });
        }
        Ok(())
    }
}

fn fmt_dims(dims: &[i64]) -> String {
    let parts: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// Elements a declared shape holds, refusing negative dimensions and
/// overflow (u128 holds any product of a few i64s; more dims can overflow).
fn element_count(name: &str, dims: &[i64]) -> Result<u128, OnnxError> {
    let mut count: u128 = 1;
    for &d in dims {
        let d = u128::try_from(d).map_err(|_| OnnxError::BadTensor {
            tensor: quote(name),
            problem: format!("has negative dimension {d} in shape {}", fmt_dims(dims)),
        })?;
        count = count.checked_mul(d).ok_or_else(|| OnnxError::BadTensor {
            tensor: quote(name),
            problem: format!(
                "has shape {}, whose element count overflows",
                fmt_dims(dims)
            ),
        })?;
    }
    Ok(count)
}

/// Checks that a tensor holds exactly the data its shape declares.
fn check_data_size(tensor: &pb::TensorProto, name: &str, elements: u128) -> Result<(), OnnxError> {
    use pb::tensor_proto::DataType;
    let Ok(data_type) = DataType::try_from(tensor.data_type) else {
        return Err(OnnxError::BadTensor {
            tensor: quote(name),
            problem: format!("has unknown data type {}", tensor.data_type),
        });
    };
    let itemsize: u128 = match data_type {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 => 8,
        DataType::Uint8 | DataType::Int8 | DataType::Bool => 1,
        DataType::Uint16 | DataType::Int16 | DataType::Float16 | DataType::Bfloat16 => 2,
        // strings, complex and sub-byte types: tract checks these itself
        _ => return Ok(()),
    };
    let mismatch = |holds: String| OnnxError::BadTensor {
        tensor: quote(name),
        problem: format!(
            "declares {elements} {} values but holds {holds}",
            data_type.as_str_name()
        ),
    };
    if !tensor.raw_data.is_empty() {
        let have = tensor.raw_data.len() as u128;
        if have != elements * itemsize {
            return Err(mismatch(format!(
                "{have} bytes (expected {})",
                elements * itemsize
            )));
        }
        return Ok(());
    }
    let typed = match data_type {
        DataType::Float => tensor.float_data.len(),
        DataType::Double => tensor.double_data.len(),
        DataType::Int64 => tensor.int64_data.len(),
        DataType::Uint32 | DataType::Uint64 => tensor.uint64_data.len(),
        _ => tensor.int32_data.len(),
    } as u128;
    if typed != elements {
        return Err(mismatch(format!("{typed} values")));
    }
    Ok(())
}

fn check_op(node: &pb::NodeProto, node_label: &str) -> Result<(), OnnxError> {
    let op = node.op_type.as_str();
    let allowed = match node.domain.as_str() {
        "" | "ai.onnx" => ONNX_OPS.contains(&op),
        ML_DOMAIN => {
            if op == "ZipMap" {
                return Err(OnnxError::ZipMap);
            }
            ML_OPS.contains(&op)
        }
        other => {
            return Err(OnnxError::UnknownDomain {
                domain: quote(other),
                op: quote(op),
            });
        }
    };
    if !allowed {
        return Err(OnnxError::ForbiddenOp {
            op: quote(op),
            domain: if node.domain.is_empty() || node.domain == "ai.onnx" {
                String::new()
            } else {
                format!(" ({})", quote(&node.domain))
            },
            node: node_label.to_owned(),
        });
    }
    Ok(())
}

/// A declared value type: element type name and dims, or why there is none.
fn tensor_type(info: &pb::ValueInfoProto) -> Option<&pb::type_proto::Tensor> {
    match info.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => Some(t),
    }
}

/// NumPy-style name of an ONNX element type ("float32", "int64", ...).
fn elem_type_name(elem_type: i32) -> String {
    use pb::tensor_proto::DataType;
    match DataType::try_from(elem_type) {
        Ok(DataType::Float) => "float32".to_owned(),
        Ok(DataType::Double) => "float64".to_owned(),
        Ok(DataType::Float16) => "float16".to_owned(),
        Ok(other) => other.as_str_name().to_lowercase(),
        Err(_) => format!("unknown type #{elem_type}"),
    }
}

fn fmt_shape_proto(shape: Option<&pb::TensorShapeProto>) -> String {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(shape) = shape else {
        return "unknown".to_owned();
    };
    let dims: Vec<String> = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(v)) => v.to_string(),
            Some(Value::DimParam(p)) => quote(p),
            None => "?".to_owned(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Whether a dimension can be a batch dimension: symbolic, unknown, or 1.
/// Returns `Some(dynamic)` when it can.
fn batch_dim(dim: &pb::tensor_shape_proto::Dimension) -> Option<bool> {
    use pb::tensor_shape_proto::dimension::Value;
    match &dim.value {
        Some(Value::DimValue(1)) => Some(false),
        Some(Value::DimValue(_)) => None,
        Some(Value::DimParam(_)) | None => Some(true),
    }
}

fn dim_is(dim: &pb::tensor_shape_proto::Dimension, want: usize) -> bool {
    use pb::tensor_shape_proto::dimension::Value;
    matches!(&dim.value, Some(Value::DimValue(v)) if usize::try_from(*v) == Ok(want))
}

/// Finds the single real input (graph inputs that are not initializers) and
/// checks its type and shape. Returns its name and whether the batch is dynamic.
fn check_input(graph: &pb::GraphProto, spec: &TaskSpec) -> Result<(String, bool), OnnxError> {
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .collect();
    let [input] = inputs.as_slice() else {
        let names: Vec<String> = inputs
            .iter()
            .map(|i| format!("'{}'", quote(&i.name)))
            .collect();
        return Err(OnnxError::InputCount {
            count: inputs.len(),
            names: if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
        });
    };
    let name = quote(&input.name);
    let expected = {
        let mut parts = vec!["N".to_owned()];
        parts.extend(spec.input_shape.iter().map(ToString::to_string));
        format!("[{}]", parts.join(", "))
    };
    let Some(t) = tensor_type(input) else {
        return Err(OnnxError::InputType {
            name,
            found: "a non-tensor type".to_owned(),
        });
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(OnnxError::InputType {
            name,
            found: elem_type_name(t.elem_type),
        });
    }
    let shape_error = || OnnxError::InputShape {
        name: name.clone(),
        found: fmt_shape_proto(t.shape.as_ref()),
        expected: expected.clone(),
    };
    let dims = &t.shape.as_ref().ok_or_else(shape_error)?.dim;
    let Some((first, rest)) = dims.split_first() else {
        return Err(shape_error());
    };
    let dynamic = batch_dim(first).ok_or_else(shape_error)?;
    if rest.len() != spec.input_shape.len()
        || !rest
            .iter()
            .zip(&spec.input_shape)
            .all(|(d, &want)| dim_is(d, want))
    {
        return Err(shape_error());
    }
    Ok((input.name.clone(), dynamic))
}

/// Picks the first output of type float32 and shape `[N, classes]`.
fn pick_output(graph: &pb::GraphProto, classes: usize) -> Result<String, OnnxError> {
    let scores = graph.output.iter().find(|o| {
        let Some(t) = tensor_type(o) else {
            return false;
        };
        let Some(shape) = &t.shape else {
            return false;
        };
        t.elem_type == pb::tensor_proto::DataType::Float as i32
            && shape.dim.len() == 2
            && batch_dim(&shape.dim[0]).is_some()
            && dim_is(&shape.dim[1], classes)
    });
    match scores {
        Some(o) => Ok(o.name.clone()),
        None => {
            let outputs: Vec<String> = graph
                .output
                .iter()
                .map(|o| match tensor_type(o) {
                    Some(t) => format!(
                        "'{}' {} {}",
                        quote(&o.name),
                        elem_type_name(t.elem_type),
                        fmt_shape_proto(t.shape.as_ref())
                    ),
                    None => format!("'{}' (not a tensor)", quote(&o.name)),
                })
                .collect();
            Err(OnnxError::NoScoresOutput {
                classes,
                outputs: if outputs.is_empty() {
                    "none".to_owned()
                } else {
                    outputs.join(", ")
                },
            })
        }
    }
}
