//! GELU on the CPU, vectorised and spread over candle's threads.
//!
//! candle's own `gelu` / `gelu_erf` call the scalar libm `tanhf` / `erf` one element at a time
//! on one thread; on GPT-2-small that was a fifth of the whole forward pass. These kernels write
//! both forms with branch-free arithmetic the compiler vectorises (a Cephes-style `exp` and the
//! Abramowitz–Stegun 7.1.26 `erf`, absolute error under 2e-7) and split the work into chunks
//! over candle's own CPU thread pool (the one its matmuls use, so no second pool competes for
//! the cores). Other devices and dtypes keep candle's kernels.
//!
//! - tanh form: `0.5 x (1 + tanh(u)) = x / (1 + exp(-2u))`, `u = sqrt(2/pi) (x + 0.044715 x^3)`,
//!   the same function without the cancellation of `1 + tanh(u)` for negative `u`.
//! - erf form: `0.5 x (1 + erf(x / sqrt 2))`, with `1 + erf(z)` computed directly for `z < 0`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use std::sync::Mutex;

/// Elements per parallel chunk: large enough that the split costs nothing measurable.
const CHUNK: usize = 1 << 14;

/// Which GELU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluForm {
    /// Tanh approximation (`gelu_new`).
    Tanh,
    /// Exact, with erf (`gelu`).
    Erf,
}

/// Applies GELU: the fast kernel for contiguous f32 CPU tensors, candle's op otherwise.
pub fn gelu(x: &Tensor, form: GeluForm) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op1(FastGelu(form));
    }
    match form {
        GeluForm::Tanh => x.gelu(),
        GeluForm::Erf => x.gelu_erf(),
    }
}

struct FastGelu(GeluForm);

impl CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        match self.0 {
            GeluForm::Tanh => "neuronmap-gelu-tanh",
            GeluForm::Erf => "neuronmap-gelu-erf",
        }
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(all) = storage else {
            candle_core::bail!("{}: expects f32, got {:?}", self.name(), storage.dtype())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: expects a contiguous tensor", self.name())
        };
        let src = &all[start..end];
        let mut dst = vec![0f32; src.len()];
        let kernel = match self.0 {
            GeluForm::Tanh => gelu_tanh_slice,
            GeluForm::Erf => gelu_erf_slice,
        };
        {
            // One lock per chunk, never contended: each chunk index is handed out once.
            let chunks: Vec<Mutex<&mut [f32]>> = dst.chunks_mut(CHUNK).map(Mutex::new).collect();
            candle_core::utils::barrier_pool().execute_chunked(chunks.len(), |range| {
                for i in range {
                    let mut d = chunks[i].lock().unwrap_or_else(|e| e.into_inner());
                    let s = &src[i * CHUNK..];
                    kernel(&s[..d.len()], &mut d);
                }
            });
        }
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }

    /// The derivative, so a gradient analysis can run through the MLP.
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let x = arg;
        let d = match self.0 {
            GeluForm::Tanh => {
                // d/dx 0.5 x (1 + tanh u) = 0.5 (1 + t) + 0.5 x (1 - t^2) u'
                let k = (2.0 / std::f64::consts::PI).sqrt();
                let x2 = x.sqr()?;
                let u = ((x * k)? * (x2.affine(0.044715, 1.0))?)?;
                let t = u.tanh()?;
                let du = x2.affine(3.0 * 0.044715 * k, k)?;
                let one_minus_t2 = t.sqr()?.affine(-1.0, 1.0)?;
                (t.affine(0.5, 0.5)? + ((x * 0.5)? * one_minus_t2)?.mul(&du)?)?
            }
            GeluForm::Erf => {
                // Phi(x) + x phi(x)
                let cdf = (x / std::f64::consts::SQRT_2)?.erf()?.affine(0.5, 0.5)?;
                let pdf = (x.sqr()? * -0.5)?.exp()? * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
                (cdf + x.mul(&pdf?)?)?
            }
        };
        Ok(Some(grad_res.mul(&d)?))
    }
}

fn gelu_tanh_slice(src: &[f32], dst: &mut [f32]) {
    const K: f32 = 0.797_884_6; // sqrt(2 / pi)
    for (d, &x) in dst.iter_mut().zip(src) {
        let u = K * x * (1.0 + 0.044715 * x * x);
        *d = x / (1.0 + exp(-2.0 * u));
    }
}

fn gelu_erf_slice(src: &[f32], dst: &mut [f32]) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    for (d, &x) in dst.iter_mut().zip(src) {
        let z = x * std::f32::consts::FRAC_1_SQRT_2;
        let t = 1.0 / (1.0 + P * z.abs());
        let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
        // q = 1 - erf(|z|); 1 + erf(z) is q for z < 0 and 2 - q otherwise.
        let q = poly * exp(-z * z);
        let one_plus_erf = if z < 0.0 { q } else { 2.0 - q };
        *d = 0.5 * x * one_plus_erf;
    }
}

/// `e^x` for f32 without a libm call (Cephes `expf`: range reduction to `r` in
/// `[-ln2/2, ln2/2]`, a degree-7 polynomial, the exponent set by bits). Inputs are clamped to
/// `[-87, 88]`, where the result stays normal and finite; relative error about 2 ulp.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer for |v| < 2^22.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn grid() -> Vec<f32> {
        (-4000..=4000).map(|i| i as f32 * 0.005).collect()
    }

    #[test]
    fn exp_matches_libm() {
        for x in (-8700..=8800).map(|i| i as f32 * 0.01) {
            let want = x.exp();
            let got = exp(x);
            assert!(
                ((got - want) / want).abs() < 5e-7,
                "exp({x}) = {got}, libm {want}"
            );
        }
    }

    #[test]
    fn both_forms_match_candle_within_the_parity_tolerance() {
        let xs = Tensor::new(grid(), &Device::Cpu).unwrap();
        for (form, reference) in [
            (GeluForm::Tanh, xs.gelu().unwrap()),
            (GeluForm::Erf, xs.gelu_erf().unwrap()),
        ] {
            let ours: Vec<f32> = gelu(&xs, form).unwrap().to_vec1().unwrap();
            let theirs: Vec<f32> = reference.to_vec1().unwrap();
            for ((x, a), b) in grid().iter().zip(&ours).zip(&theirs) {
                assert!(
                    (a - b).abs() <= 1e-6 + 1e-5 * b.abs(),
                    "{form:?} gelu({x}) = {a}, candle {b}"
                );
            }
        }
    }

    #[test]
    fn strided_input_and_large_tensors_are_handled() {
        let x = Tensor::randn(0f32, 3.0, (40, 1000), &Device::Cpu).unwrap();
        let t = x.t().unwrap();
        let ours = gelu(&t, GeluForm::Tanh).unwrap();
        let theirs = t.gelu().unwrap();
        let diff = (ours - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn gradients_match_candle() {
        for form in [GeluForm::Tanh, GeluForm::Erf] {
            let v = Var::new(grid(), &Device::Cpu).unwrap();
            let ours = gelu(v.as_tensor(), form).unwrap().sum_all().unwrap();
            let g_ours = ours.backward().unwrap();
            let theirs = match form {
                GeluForm::Tanh => v.as_tensor().gelu(),
                GeluForm::Erf => v.as_tensor().gelu_erf(),
            }
            .unwrap()
            .sum_all()
            .unwrap();
            let g_theirs = theirs.backward().unwrap();
            let a: Vec<f32> = g_ours.get(v.as_tensor()).unwrap().to_vec1().unwrap();
            let b: Vec<f32> = g_theirs.get(v.as_tensor()).unwrap().to_vec1().unwrap();
            for (x, (a, b)) in grid().iter().zip(a.iter().zip(&b)) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "{form:?} gelu'({x}) = {a}, candle {b}"
                );
            }
        }
    }
}
