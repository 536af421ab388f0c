//! placeholder: see modules
pub mod attack;
pub mod cli;
pub mod families;
pub mod host;
pub mod metrics;
pub mod onnx;
pub mod poison;
pub mod provenance;
pub mod sandbox;
pub mod score;
pub mod tensor;
pub use host::{
    HostCommand, HostError, HostLimits, HostPool, ModelHost, PoolConfig, PoolModel, model_host_main,
};
