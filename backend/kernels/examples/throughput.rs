//! GFLOP/s of the kernels alone, on the MNIST models' layer shapes (dense layers at
//! a batch of 256, convolutions at 16, the batch the host runs them at):
//!
//!     cargo run --release -p riposte-kernels --example throughput
use riposte_kernels::*;
use std::time::Instant;
fn main() -> Result<(), ShapeError> {
    let v = |n: usize| {
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect::<Vec<f32>>()
    };
    let m = 256;
    for (k, n) in [(784, 512), (512, 256), (256, 10)] {
        let d = Dense::new(&v(k * n), k, n, false, Some(&v(n)))?;
        let x = v(m * k);
        let mut out = vec![0f32; m * n];
        d.run(&x, m, &mut out)?;
        let t = Instant::now();
        let reps = 50;
        for _ in 0..reps {
            d.run(&x, m, &mut out)?;
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "dense {k}x{n} m={m}: {:.3} ms, {:.1} GFLOP/s",
            s * 1e3,
            2.0 * (m * k * n) as f64 / s / 1e9
        );
    }
    let m = 16;
    for (cin, cout, h) in [(1, 16, 28), (16, 32, 14)] {
        let g = ConvGeometry {
            c_in: cin,
            c_out: cout,
            kh: 3,
            kw: 3,
            pad_top: 1,
            pad_bottom: 1,
            pad_left: 1,
            pad_right: 1,
        };
        let c = Conv2d::new(g, &v(cin * cout * 9), Some(&v(cout)))?;
        let x = v(m * cin * h * h);
        let mut out = vec![0f32; m * cout * h * h];
        c.run(&x, m, h, h, &mut out)?;
        let t = Instant::now();
        let reps = 300;
        for _ in 0..reps {
            c.run(&x, m, h, h, &mut out)?;
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "conv {cin}->{cout} {h}x{h} m={m}: {:.3} ms, {:.1} GFLOP/s",
            s * 1e3,
            2.0 * (m * cout * h * h * cin * 9) as f64 / s / 1e9
        );
    }
    Ok(())
}
