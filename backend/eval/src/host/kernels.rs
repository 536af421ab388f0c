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
//!
//! [`swap_dense_and_conv`] runs earlier, on the decluttered model, before tract lowers
//! anything: every matrix product with constant weights (a `Gemm`, or a `MatMul`
//! that is one once its size-1 and flattened axes are set aside) and every
//! stride-1 NCHW convolution goes to `riposte_kernels`, whose sums are
//! tract's bit for bit (see that crate), with the bias `Add` and the `Relu` that
//! follow it folded into the kernel's last step instead of a pass of their own
//! over the activations.
//! tract 0.23.9 lowers each convolution to
//! im2col plus a matrix product and, for a fixed batch, packs the activations rather
//! than the weights; those two choices cost the MNIST models most of the gap to
//! onnxruntime (docs/BENCHMARKS.md).

use std::sync::Arc;

use riposte_kernels::{Conv2d, ConvGeometry, Dense};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, OptMaxPool, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::{Add, Max};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// `impl Op` for one of our ops: its name, and typed.
macro_rules! named_op {
    ($ty:ty, $name:literal) => {
        impl Op for $ty {
            fn name(&self) -> StaticName {
                $name.into()
            }

            op_as_typed_op!();
        }
    };
}

/// tract's optimisation with riposte's kernels swapped in: how the host turns a
/// model with its input fact into the model it plans.
pub(crate) fn optimized(model: InferenceModel) -> TractResult<TypedModel> {
    let mut typed = model.into_typed()?.into_decluttered()?;
    swap_dense_and_conv(&mut typed)?;
    let mut typed = typed.into_optimized()?;
    swap_slow_kernels(&mut typed)?;
    Ok(typed)
}

/// Replaces every constant-weight matrix product [`dense_patch`] recognises (with
/// the bias `Add` and the `Relu` that follow it, if any) by [`DenseOp`] and every
/// stride-1, undilated, ungrouped NCHW f32 convolution with constant weights (with
/// the `Relu` that follows it, if any) by [`ConvOp`];
/// on a CPU without AVX-512F or AVX2 + FMA, changes nothing. Runs on the
/// decluttered model, before `into_optimized`.
pub(crate) fn swap_dense_and_conv(model: &mut TypedModel) -> TractResult<()> {
    if !riposte_kernels::available() {
        return Ok(());
    }
    let ids: Vec<usize> = model.eval_order()?;
    for id in ids {
        if let Some(patch) = dense_patch(model, id)? {
            patch.apply(model)?;
        } else if let Some(patch) = conv_patch(model, id)? {
            patch.apply(model)?;
        }
    }
    Ok(())
}

fn const_f32(model: &TypedModel, outlet: OutletId) -> Option<Arc<Tensor>> {
    let fact = model.outlet_fact(outlet).ok()?;
    let konst = fact.konst.clone()?;
    (konst.datum_type() == f32::datum_type()).then_some(konst)
}

fn f32_values(t: &Tensor) -> TractResult<Vec<f32>> {
    Ok(t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

/// `x · W` with `W` constant, as a `[M, K] x [K, N]` product. Every axis of the
/// einsum is one of: the batch `M` (x's first axis and an output axis; absent for a
/// batch of one, which tract drops), `N` (one end of W's axes and an output axis,
/// after `M`), an axis summed over (in x and W, in the same order in both), or an
/// axis of size 1. tract folds a `Flatten` into the product this way (`mbak,akn->mn`
/// for the MNIST MLP's first layer); `Gemm` with `transB` puts `N` first in W. The
/// constant bias of a single following `Add` joins it.
fn dense_patch(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if op.q_params.is_some() || op.operating_dt != f32::datum_type() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let Some(w) = const_f32(model, node.inputs[1]) else {
        return Ok(None);
    };
    let out_fact = model.outlet_fact(OutletId::new(id, 0))?;
    if x.datum_type != f32::datum_type() || x.konst.is_some() {
        return Ok(None);
    }
    let x_dims: Vec<Option<usize>> = x.shape.iter().map(|d| d.to_usize().ok()).collect();
    let mut out_shape: Vec<Option<OutDim>> = vec![None; out_fact.rank()];
    let (mut m_out, mut n_at) = (None, None);
    // Summed axes: (position in x, position in W).
    let mut summed: Vec<(usize, usize)> = Vec::new();
    for axis in op.axes.iter_all_axes() {
        let (xi, wi, oi) = (&axis.inputs[0], &axis.inputs[1], &axis.outputs[0]);
        if xi.len() > 1 || wi.len() > 1 || oi.len() > 1 {
            return Ok(None);
        }
        match (xi.first(), wi.first(), oi.first()) {
            (Some(0), None, Some(&o)) => {
                m_out = Some(o);
                out_shape[o] = Some(OutDim::Batch);
            }
            (None, Some(&p), Some(&o)) => {
                n_at = Some((p, o));
                out_shape[o] = Some(OutDim::Fixed(w.shape()[p]));
            }
            (None, None, Some(&o)) if out_fact.shape[o].to_usize().ok() == Some(1) => {
                out_shape[o] = Some(OutDim::Fixed(1));
            }
            (Some(&a), Some(&b), None) => summed.push((a, b)),
            (Some(&a), None, None) if x_dims[a] == Some(1) => {}
            (None, Some(&b), None) if w.shape()[b] == 1 => {}
            _ => return Ok(None),
        }
    }
    let (Some((n_at, n_out)), Some(out_shape)) =
        (n_at, out_shape.into_iter().collect::<Option<TVec<_>>>())
    else {
        return Ok(None);
    };
    summed.sort_unstable();
    let in_order = summed.windows(2).all(|p| p[0].1 < p[1].1);
    if !in_order || m_out.is_some_and(|m| m > n_out) {
        return Ok(None);
    }
    let transposed = match n_at {
        0 if w.rank() > 1 => true,
        p if p + 1 == w.rank() => false,
        _ => return Ok(None),
    };
    // K: every axis of x but the batch, all concrete.
    let skip = usize::from(m_out.is_some());
    let Some(k) = x_dims[skip..]
        .iter()
        .try_fold(1usize, |k, d| k.checked_mul((*d)?))
    else {
        return Ok(None);
    };
    let n = w.shape()[n_at];
    if k == 0 || n == 0 || k.checked_mul(n) != Some(w.len()) {
        return Ok(None);
    }
    let mut absorbed = vec![id];
    let bias_add = bias_add_after(model, OutletId::new(id, 0), n)?;
    let weights = f32_values(&w)?;
    let bias = match &bias_add {
        Some((add, b)) => {
            absorbed.push(*add);
            Some(f32_values(b)?)
        }
        None => None,
    };
    let mut dense = Dense::new(&weights, k, n, transposed, bias.as_deref())
        .map_err(|e| anyhow::anyhow!("dense kernel for {}: {e}", node.name))?;
    if let Some(relu) = relu_after(model, last_outlet(&absorbed))? {
        dense = dense.with_relu();
        absorbed.push(relu);
    }
    let op = DenseOp {
        kernel: Arc::new(dense),
        batched: m_out.is_some(),
        out_shape,
    };
    fuse(model, node.inputs[0], op, &absorbed).map(Some)
}

fn last_outlet(absorbed: &[usize]) -> OutletId {
    OutletId::new(absorbed[absorbed.len() - 1], 0)
}

/// A patch that computes `op` on `input` in place of the chain of nodes `absorbed`
/// (each the only reader of the one before): the last one's readers read `op`.
fn fuse(
    model: &TypedModel,
    input: OutletId,
    op: impl Into<Box<dyn TypedOp>>,
    absorbed: &[usize],
) -> TractResult<TypedModelPatch> {
    let mut patch = TypedModelPatch::default();
    let tapped = patch.tap_model(model, input)?;
    let out = patch.wire_node(&model.node(absorbed[0]).name, op, &[tapped])?[0];
    patch.shunt_outside(model, last_outlet(absorbed), out)?;
    for id in absorbed {
        patch.obliterate(*id)?;
    }
    Ok(patch)
}

/// The binary op of type `B` that is the only reader of `outlet` (not a model
/// output), with a constant f32 as its other input and the shape of `outlet` as
/// its own: its node and the constant.
fn const_binary_after<B: BinMiniOp>(
    model: &TypedModel,
    outlet: OutletId,
) -> TractResult<Option<(usize, Arc<Tensor>)>> {
    if model.output_outlets()?.contains(&outlet) {
        return Ok(None);
    }
    let Some(succ) = model.single_succ(outlet.node)? else {
        return Ok(None);
    };
    let Some(bin) = succ.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if !bin.0.is::<B>() || bin.1.is_some_and(|dt| dt != f32::datum_type()) || succ.inputs.len() != 2
    {
        return Ok(None);
    }
    let other = if succ.inputs[0] == outlet {
        succ.inputs[1]
    } else if succ.inputs[1] == outlet {
        succ.inputs[0]
    } else {
        return Ok(None);
    };
    let Some(konst) = const_f32(model, other) else {
        return Ok(None);
    };
    let same_shape =
        model.outlet_fact(OutletId::new(succ.id, 0))?.shape == model.outlet_fact(outlet)?.shape;
    Ok(same_shape.then_some((succ.id, konst)))
}

/// The `Max` with a constant +0.0 (ONNX `Relu`, as tract-onnx expands it) that is
/// the only reader of `outlet`: its node. The kernels fold it in as tract's `Max`
/// computes it ([`Dense::with_relu`]), bit for bit on every value but NaN: where
/// tract would fuse the `Relu` into its own product kernel, that kernel keeps a
/// NaN the folded `Relu` turns into 0. Validated inputs are finite; only a
/// model's own arithmetic (an overflow to infinities) can make a NaN there.
fn relu_after(model: &TypedModel, outlet: OutletId) -> TractResult<Option<usize>> {
    let Some((id, zero)) = const_binary_after::<Max>(model, outlet)? else {
        return Ok(None);
    };
    let plain = zero.try_as_plain_ram()?;
    let values = plain.as_slice::<f32>()?;
    Ok((!values.is_empty() && values.iter().all(|v| v.to_bits() == 0)).then_some(id))
}

/// The `Add` that is the only reader of `outlet` (not a model output) and adds it a
/// constant f32 bias of `n` values along its last axis (`[n]`, `[1, n]`, ...)
/// without changing its shape: its node and the bias.
fn bias_add_after(
    model: &TypedModel,
    outlet: OutletId,
    n: usize,
) -> TractResult<Option<(usize, Arc<Tensor>)>> {
    let found = const_binary_after::<Add>(model, outlet)?;
    Ok(found.filter(|(_, bias)| bias.shape().last() == Some(&n) && bias.len() == n))
}

/// A convolution [`Conv2d`] covers: f32 NCHW, 2-D, stride 1, no dilation, one group,
/// OIHW weights and bias constant, padding below the kernel's size.
fn conv_patch(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &op.pool_spec;
    if op.q_params.is_some()
        || op.group != 1
        || op.kernel_fmt != KernelFormat::OIHW
        || spec.data_format != DataFormat::NCHW
        || spec.kernel_shape.len() != 2
        || spec.strides().iter().any(|s| *s != 1)
        || spec.dilations().iter().any(|d| *d != 1)
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let (Some(kernel), Some(bias)) = (
        const_f32(model, node.inputs[1]),
        const_f32(model, node.inputs[2]),
    ) else {
        return Ok(None);
    };
    let &[c_out, c_in, kh, kw] = kernel.shape() else {
        return Ok(None);
    };
    if x.rank() != 4 {
        return Ok(None);
    }
    let concrete = |d: usize| x.shape[d].to_usize().ok();
    if x.datum_type != f32::datum_type()
        || concrete(1) != Some(c_in)
        || concrete(2).is_none()
        || concrete(3).is_none()
    {
        return Ok(None);
    }
    let (before, after): (&[usize], &[usize]) = match &spec.padding {
        PaddingSpec::Valid => (&[0, 0], &[0, 0]),
        PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, false) => (b, a),
        _ => return Ok(None),
    };
    let [pad_top, pad_left] = before[..] else {
        return Ok(None);
    };
    let [pad_bottom, pad_right] = after[..] else {
        return Ok(None);
    };
    // tract adds no bias that is all zeros (so a -0.0 sum stays -0.0): nor do we.
    let bias = if bias.is_all_zero()? {
        None
    } else if bias.len() == 1 {
        Some(vec![f32_values(&bias)?[0]; c_out])
    } else if bias.len() == c_out && bias.rank() == 1 {
        Some(f32_values(&bias)?)
    } else {
        return Ok(None);
    };
    let geometry = ConvGeometry {
        c_in,
        c_out,
        kh,
        kw,
        pad_top,
        pad_bottom,
        pad_left,
        pad_right,
    };
    // Geometries the kernel refuses (wide padding) keep tract's convolution.
    let Ok(mut conv) = Conv2d::new(geometry, &f32_values(&kernel)?, bias.as_deref()) else {
        return Ok(None);
    };
    let mut absorbed = vec![id];
    if let Some(relu) = relu_after(model, OutletId::new(id, 0))? {
        conv = conv.with_relu();
        absorbed.push(relu);
    }
    fuse(model, node.inputs[0], ConvOp(Arc::new(conv)), &absorbed).map(Some)
}

/// An output axis of [`DenseOp`]: the input's batch, or a fixed size (`N`, or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutDim {
    Batch,
    Fixed(usize),
}

/// [`Dense`] as a tract op: `[M, ...]` in (or `[...]` for one example when not
/// `batched`; the rest, row-major, is K), the einsum's output shape out.
#[derive(Debug, Clone)]
pub(crate) struct DenseOp {
    kernel: Arc<Dense>,
    batched: bool,
    out_shape: TVec<OutDim>,
}

impl PartialEq for DenseOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.kernel, &other.kernel)
            && self.batched == other.batched
            && self.out_shape == other.out_shape
    }
}

impl Eq for DenseOp {}

named_op!(DenseOp, "RiposteDense");

impl EvalOp for DenseOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        let m = match (self.batched, shape.first()) {
            (false, _) => 1,
            (true, Some(m)) => *m,
            (true, None) => bail!("RiposteDense takes [M, ...], got a scalar"),
        };
        let k: usize = shape[usize::from(self.batched)..].iter().product();
        let d = &self.kernel;
        ensure!(
            k == d.k(),
            "RiposteDense takes K = {}, got {shape:?}",
            d.k()
        );
        let plain = input.try_as_plain_ram()?;
        let mut out = vec![0f32; m * d.n()];
        d.run(plain.as_slice::<f32>()?, m, &mut out)
            .map_err(|e| anyhow::anyhow!("RiposteDense: {e}"))?;
        let dims: Vec<usize> = self
            .out_shape
            .iter()
            .map(|d| match d {
                OutDim::Batch => m,
                OutDim::Fixed(v) => *v,
            })
            .collect();
        let out = tract_ndarray::ArrayD::from_shape_vec(dims, out)?;
        Ok(tvec!(out.into_tensor().into_tvalue()))
    }
}

impl TypedOp for DenseOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let fact = inputs[0];
        ensure!(fact.datum_type == f32::datum_type() && (!self.batched || fact.rank() >= 1));
        let dims: TVec<TDim> = self
            .out_shape
            .iter()
            .map(|d| match d {
                OutDim::Batch => fact.shape[0].clone(),
                OutDim::Fixed(v) => v.to_dim(),
            })
            .collect();
        Ok(tvec!(f32::fact(dims)))
    }

    as_op!();
}

/// [`Conv2d`] as a tract op: `[N, C_in, H, W]` in, `[N, C_out, OH, OW]` out.
#[derive(Debug, Clone)]
pub(crate) struct ConvOp(Arc<Conv2d>);

impl PartialEq for ConvOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ConvOp {}

named_op!(ConvOp, "RiposteConv2d");

impl EvalOp for ConvOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[n, c, h, w] = input.shape() else {
            bail!("RiposteConv2d takes [N, C, H, W], got {:?}", input.shape());
        };
        let g = self.0.geometry();
        ensure!(
            c == g.c_in,
            "RiposteConv2d takes {} channels, got {c}",
            g.c_in
        );
        let (oh, ow) = self
            .0
            .output_hw(h, w)
            .map_err(|e| anyhow::anyhow!("RiposteConv2d: {e}"))?;
        let plain = input.try_as_plain_ram()?;
        let mut out = vec![0f32; n * g.c_out * oh * ow];
        self.0
            .run(plain.as_slice::<f32>()?, n, h, w, &mut out)
            .map_err(|e| anyhow::anyhow!("RiposteConv2d: {e}"))?;
        let out = tract_ndarray::ArrayD::from_shape_vec(&[n, g.c_out, oh, ow][..], out)?;
        Ok(tvec!(out.into_tensor().into_tvalue()))
    }
}

impl TypedOp for ConvOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let fact = inputs[0];
        ensure!(fact.datum_type == f32::datum_type() && fact.rank() == 4);
        let g = self.0.geometry();
        let (h, w) = (fact.shape[2].to_usize()?, fact.shape[3].to_usize()?);
        let (oh, ow) = self
            .0
            .output_hw(h, w)
            .map_err(|e| anyhow::anyhow!("RiposteConv2d: {e}"))?;
        let dims: TVec<TDim> = tvec!(
            fact.shape[0].clone(),
            g.c_out.to_dim(),
            oh.to_dim(),
            ow.to_dim()
        );
        Ok(tvec!(f32::fact(dims)))
    }

    as_op!();
}

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

named_op!(MaxPool2x2, "RiposteMaxPool2x2");

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

    /// The challenge models through the host's optimisation and through tract's own,
    /// on real digits and on noise, at a batch of one, an odd batch and 256.
    #[test]
    fn the_mnist_models_give_tracts_logits_bit_for_bit() {
        use crate::tensor::{Limits, read_tensor};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../challenges/mnist-evasion/public");
        let digits = read_tensor(
            &std::fs::read(dir.join("eval_x.npy")).unwrap(),
            Some("eval_x.npy"),
            &Limits::default(),
        )
        .unwrap()
        .data;
        // (model, a swapped op, how many ReLUs its kernels take over)
        for (name, swapped, relus) in [
            ("mlp", "RiposteDense", 2),
            ("cnn", "RiposteConv2d", 2),
            ("baseline_defense", "RiposteConv2d", 3),
        ] {
            let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
            for batch in [1, 5, 256] {
                let shape = [batch, 1, 28, 28];
                let model = tract_onnx::onnx()
                    .model_for_read(&mut std::io::Cursor::new(&bytes))
                    .unwrap()
                    .with_input_fact(0, f32::fact(shape).into())
                    .unwrap();
                let theirs = model.clone().into_optimized().unwrap();
                let ours = optimized(model).unwrap();
                if riposte_kernels::available() {
                    assert!(
                        ours.nodes().iter().any(|n| n.op.name() == swapped),
                        "{name}: no {swapped} in the plan"
                    );
                    assert_eq!(fused_relus(&ours), relus, "{name}");
                }
                let len = batch * 784;
                let real: Vec<f32> = digits.iter().cycle().take(len).copied().collect();
                // Noise around the digits, as an attack's queries are.
                let noisy: Vec<f32> = real
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v + ((i * 7919 % 201) as f32 - 100.0) / 400.0).clamp(0.0, 1.0))
                    .collect();
                for x in [real, noisy] {
                    let input = Tensor::from_shape(&shape, &x).unwrap();
                    assert_eq!(
                        bits_of(ours.clone(), &input),
                        bits_of(theirs.clone(), &input),
                        "{name} at batch {batch}"
                    );
                }
            }
        }
    }

    fn fused_relus(model: &TypedModel) -> usize {
        model
            .nodes()
            .iter()
            .filter(|n| {
                n.op_as::<DenseOp>().is_some_and(|d| d.kernel.has_relu())
                    || n.op_as::<ConvOp>().is_some_and(|c| c.0.has_relu())
            })
            .count()
    }

    fn bits_of(model: TypedModel, input: &Tensor) -> Vec<u32> {
        model
            .into_runnable()
            .unwrap()
            .run(tvec!(input.clone().into()))
            .unwrap()
            .remove(0)
            .into_tensor()
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Compares the host's optimisation with tract's on a hand-built model.
    fn both_ways(model: TypedModel, swapped: &str, input: Tensor, relus: usize) {
        let theirs = model.clone().into_optimized().unwrap();
        let mut ours = model.into_decluttered().unwrap();
        swap_dense_and_conv(&mut ours).unwrap();
        let ours = ours.into_optimized().unwrap();
        if riposte_kernels::available() {
            assert!(
                ours.nodes().iter().any(|n| n.op.name() == swapped),
                "no {swapped}"
            );
            assert_eq!(fused_relus(&ours), relus);
        }
        let (ours, theirs) = (bits_of(ours, &input), bits_of(theirs, &input));
        let differ: Vec<(usize, u32, u32)> = (0..ours.len())
            .filter(|&i| ours[i] != theirs[i])
            .map(|i| (i, ours[i], theirs[i]))
            .take(8)
            .collect();
        assert!(
            differ.is_empty(),
            "{swapped}: (index, ours, tract's) {differ:x?}"
        );
    }

    fn noise(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| match (i + seed) % 17 {
                0 => 0.0,
                9 => -0.0,
                _ => ((i * 7919 + seed * 104_729) % 2001) as f32 / 500.0 - 2.0,
            })
            .collect()
    }

    /// `Relu` as tract-onnx expands it: `Max` with a constant +0 of `rank` ones.
    fn wire_relu(model: &mut TypedModel, x: OutletId, rank: usize) -> OutletId {
        let ones = vec![1; rank];
        let zero = model
            .add_const("relu.low", Tensor::from_shape(&ones, &[0f32]).unwrap())
            .unwrap();
        model
            .wire_node("relu", tract_onnx::tract_core::ops::math::max(), &[x, zero])
            .unwrap()[0]
    }

    /// [`noise`] with a NaN and both infinities (a NaN comes out of tract's `Max`
    /// after a convolution, and of the folded `Relu`, as +0).
    fn noise_with_specials(len: usize, seed: usize) -> Vec<f32> {
        let mut x = noise(len, seed);
        for (i, v) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
            .into_iter()
            .enumerate()
        {
            if let Some(slot) = x.get_mut(i * 37 + 5) {
                *slot = v;
            }
        }
        x
    }

    #[test]
    fn a_transposed_gemm_with_bias_gives_tracts_bits() {
        use tract_onnx::tract_core::axes::AxesMapping;
        for (transposed, m, relu) in [(true, 13, false), (false, 1, true), (true, 40, true)] {
            let (k, n) = (37, 21);
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([m, k])).unwrap();
            let w_shape = if transposed { [n, k] } else { [k, n] };
            let w = model
                .add_const("w", Tensor::from_shape(&w_shape, &noise(k * n, 1)).unwrap())
                .unwrap();
            let axes = AxesMapping::for_numpy_matmul(2, false, transposed, false).unwrap();
            let prod = model
                .wire_node("mm", EinSum::new(axes, f32::datum_type()), &[x, w])
                .unwrap()[0];
            let b = model
                .add_const("b", Tensor::from_shape(&[1, n], &noise(n, 2)).unwrap())
                .unwrap();
            let mut out = model
                .wire_node("add", tract_onnx::tract_core::ops::math::add(), &[prod, b])
                .unwrap()[0];
            if relu {
                out = wire_relu(&mut model, out, 2);
            }
            model.select_output_outlets(&[out]).unwrap();
            // Finite: with an infinity, a sum can be NaN, and tract's own product
            // kernel keeps a NaN through a fused `Relu` that ours turns into 0.
            let input = Tensor::from_shape(&[m, k], &noise(m * k, 3)).unwrap();
            both_ways(model, "RiposteDense", input, usize::from(relu));
        }
    }

    #[test]
    fn padded_convolutions_give_tracts_bits() {
        use tract_onnx::tract_core::ops::cnn::Conv;
        // Asymmetric padding and kernel, channels off the kernel's blocks, a bias,
        // an all-zero bias (tract adds none), rows of one and of two vectors.
        for (c_in, c_out, kernel, (before, after), (h, w), zero_bias, relu) in [
            (3, 5, (3, 2), ([1, 0], [0, 1]), (9, 11), false, false),
            (2, 19, (3, 3), ([1, 1], [1, 1]), (6, 20), true, true),
            (1, 16, (3, 3), ([1, 1], [1, 1]), (28, 28), false, true),
        ] {
            let n = 2;
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([n, c_in, h, w])).unwrap();
            let kvol = c_out * c_in * kernel.0 * kernel.1;
            let k = model
                .add_const(
                    "k",
                    Tensor::from_shape(&[c_out, c_in, kernel.0, kernel.1], &noise(kvol, 4))
                        .unwrap(),
                )
                .unwrap();
            let bias = if zero_bias {
                vec![0f32; c_out]
            } else {
                noise(c_out, 5)
            };
            let b = model
                .add_const("b", Tensor::from_shape(&[c_out], &bias).unwrap())
                .unwrap();
            let conv = Conv {
                pool_spec: PoolSpec {
                    data_format: DataFormat::NCHW,
                    kernel_shape: tvec!(kernel.0, kernel.1),
                    padding: PaddingSpec::Explicit(
                        tvec!(before[0], before[1]),
                        tvec!(after[0], after[1]),
                    ),
                    dilations: None,
                    strides: None,
                    input_channels: c_in,
                    output_channels: c_out,
                },
                kernel_fmt: KernelFormat::OIHW,
                group: 1,
                q_params: None,
            };
            let mut out = model.wire_node("conv", conv, &[x, k, b]).unwrap()[0];
            if relu {
                out = wire_relu(&mut model, out, 4);
            }
            model.select_output_outlets(&[out]).unwrap();
            let x = noise_with_specials(n * c_in * h * w, 6);
            let input = Tensor::from_shape(&[n, c_in, h, w], &x).unwrap();
            both_ways(model, "RiposteConv2d", input, usize::from(relu));
        }
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
