//! Faster kernels swapped into an optimised tract plan where tract's own is slow.
//!
//! Profiled on the MNIST challenge's `cnn.onnx` (tract-onnx 0.23.9, x86_64 with
//! AVX-512): tract's `OptMaxPool` spent 35% of a batch-256 run and 51% of a batch-1
//! run on two 2x2 stride-2 pools, about 18 ns per output value. Its 2x2 fast path
//! vectorises only stride 1; stride 2, the pool every small CNN uses, falls back to a
//! per-value loop that checks every tap's bounds. [`MaxPool2x2`] does the same
//! comparisons in the same order (so every value is bit for bit tract's) over whole
//! rows, which the compiler vectorises.
//!
//! The swap runs on the optimised model, after tract has chosen everything else, and
//! only where the pool's geometry is exactly the one the kernel implements; any other
//! pool keeps tract's.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{OptMaxPool, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Replaces every 2x2, stride-2, unpadded NCHW f32 max pool of `model` with
/// [`MaxPool2x2`].
pub(crate) fn swap_slow_kernels(model: &mut TypedModel) -> TractResult<()> {
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|node| {
            node.op_as::<OptMaxPool>().is_some_and(|op| {
                op.with_index_outputs.is_none()
                    && is_2x2_stride_2_unpadded_nchw(&op.pool_spec)
                    && model
                        .outlet_fact(node.inputs[0])
                        .is_ok_and(|f| f.datum_type == f32::datum_type() && f.rank() == 4)
            })
        })
        .map(|node| node.id)
        .collect();
    for id in candidates {
        let node = model.node(id);
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, MaxPool2x2)?;
        patch.apply(model)?;
    }
    Ok(())
}

fn is_2x2_stride_2_unpadded_nchw(spec: &PoolSpec) -> bool {
    let unpadded = match &spec.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(before, after) => before.iter().chain(after).all(|p| *p == 0),
        PaddingSpec::ExplicitOnnxPool(before, after, ceil_mode) => {
            !ceil_mode && before.iter().chain(after).all(|p| *p == 0)
        }
        PaddingSpec::SameUpper | PaddingSpec::SameLower => false,
    };
    spec.data_format == DataFormat::NCHW
        && spec.kernel_shape[..] == [2, 2]
        && spec.strides()[..] == [2, 2]
        && spec.dilations().iter().all(|d| *d == 1)
        && unpadded
}

/// Max pool over 2x2 windows with stride 2 and no padding, on `[N, C, H, W]` f32;
/// an odd last row or column is dropped, as without padding.
#[derive(Debug, Clone, Copy, Default, Hash, PartialEq, Eq)]
pub(crate) struct MaxPool2x2;

impl MaxPool2x2 {
    fn output_shape(input: &[usize]) -> TractResult<[usize; 4]> {
        match input {
            [n, c, h, w] if *h >= 2 && *w >= 2 => Ok([*n, *c, h / 2, w / 2]),
            _ => bail!("MaxPool2x2 takes [N, C, H>=2, W>=2], got {input:?}"),
        }
    }
}

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "RiposteMaxPool2x2".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let [n, c, oh, ow] = Self::output_shape(input.shape())?;
        let (h, w) = (input.shape()[2], input.shape()[3]);
        let plain = input.try_as_plain_ram()?;
        let x = plain.as_slice::<f32>()?;
        let mut out = vec![0f32; n * c * oh * ow];
        for (plane, out_plane) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
            for (oy, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
                let top = &plane[2 * oy * w..][..2 * ow];
                let bottom = &plane[(2 * oy + 1) * w..][..2 * ow];
                for ((o, t), b) in out_row
                    .iter_mut()
                    .zip(top.chunks_exact(2))
                    .zip(bottom.chunks_exact(2))
                {
                    // tract's order: from f32::MIN, row by row, left to right.
                    *o = f32::MIN.max(t[0]).max(t[1]).max(b[0]).max(b[1]);
                }
            }
        }
        let out = tract_ndarray::ArrayD::from_shape_vec(&[n, c, oh, ow][..], out)?;
        Ok(tvec!(out.into_tensor().into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let fact = inputs[0];
        if fact.datum_type != f32::datum_type() {
            bail!("MaxPool2x2 takes f32, got {:?}", fact.datum_type);
        }
        let shape = fact
            .shape
            .as_concrete()
            .context("MaxPool2x2 needs a concrete input shape")?;
        Ok(tvec!(f32::fact(Self::output_shape(shape)?)))
    }

    as_op!();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::MaxPool;

    fn pool_both_ways(shape: [usize; 4], x: Vec<f32>) -> (Tensor, Tensor) {
        let mut model = TypedModel::default();
        let source = model.add_source("x", f32::fact(shape)).unwrap();
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(2, 2),
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some(tvec!(2, 2)),
            input_channels: shape[1],
            output_channels: shape[1],
        };
        let pooled = model
            .wire_node("pool", MaxPool::new(spec, None), &[source])
            .unwrap();
        model.select_output_outlets(&pooled).unwrap();
        let tract = model.clone().into_optimized().unwrap();
        let mut ours = model.into_optimized().unwrap();
        swap_slow_kernels(&mut ours).unwrap();
        assert!(
            ours.nodes().iter().any(|n| n.op_is::<MaxPool2x2>()),
            "the pool was not swapped"
        );
        let input = Tensor::from_shape(&shape, &x).unwrap();
        let run = |m: TypedModel| {
            let plan = m.into_runnable().unwrap();
            plan.run(tvec!(input.clone().into()))
                .unwrap()
                .remove(0)
                .into_tensor()
        };
        (run(tract), run(ours))
    }

    #[test]
    fn the_swapped_pool_gives_tracts_values_bit_for_bit() {
        // Odd sizes (the last row and column are dropped), negatives, infinities,
        // signed zeros and NaNs, which `f32::max` ignores.
        let shape = [2, 3, 7, 9];
        let len = shape.iter().product::<usize>();
        let specials = [f32::NAN, -0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY, -1e30];
        let x: Vec<f32> = (0..len)
            .map(|i| {
                if i % 11 == 0 {
                    specials[(i / 11) % specials.len()]
                } else {
                    ((i * 7919) % 203) as f32 / 10.0 - 10.0
                }
            })
            .collect();
        let (tract, ours) = pool_both_ways(shape, x);
        assert_eq!(tract.shape(), &[2, 3, 3, 4]);
        assert_eq!(ours.shape(), tract.shape());
        let bits = |t: &Tensor| {
            t.try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&ours), bits(&tract));
    }

    #[test]
    fn other_pools_keep_tracts_kernel() {
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(3, 3),
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some(tvec!(2, 2)),
            input_channels: 1,
            output_channels: 1,
        };
        assert!(!is_2x2_stride_2_unpadded_nchw(&spec));
        let same = PoolSpec {
            kernel_shape: tvec!(2, 2),
            padding: PaddingSpec::SameUpper,
            ..spec
        };
        assert!(!is_2x2_stride_2_unpadded_nchw(&same));
    }
}
