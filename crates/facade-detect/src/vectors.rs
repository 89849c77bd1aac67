//! Hand-written loops compiled for the widest vector unit the CPU has, chosen at run time.
//!
//! The workspace is built for any x86-64 (SSE2), so loops that the compiler vectorises, such as
//! a depthwise convolution's rows, ran four floats at a time even on CPUs with AVX-512 (gemm
//! already picks its kernels at run time). [`widest`] runs a piece of [`Wide`] work inside a
//! function compiled with AVX-512 or AVX2 enabled, when the CPU has them, so that its loops,
//! inlined there, run eight floats at a time (the compiler keeps to 256-bit vectors even where
//! AVX-512 is enabled, but gains AVX's three-operand forms and unaligned loads).
//!
//! The results do not depend on the path: the compiler never fuses a product and a sum into
//! one instruction nor reorders a float sum unless told to, so the wider loops compute every
//! output with the same operations in the same order, only several outputs at a time.

/// Work for [`widest`]: its `run` must be `#[inline(always)]`, and so must everything it calls
/// in its loops, so that all of it is compiled inside the wide function. (A closure would not
/// do: the compiler keeps a closure's body as a function of its own, built for the baseline.)
pub trait Wide {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `work` compiled for AVX-512 (F, BW, VL) or AVX2 when the CPU has them, plain
/// otherwise. Call it around the innermost work of a loop nest (one channel, one row), not
/// around a parallel loop: code reached through a thread pool runs as it was built.
#[inline(always)]
pub fn widest<W: Wide>(work: W) -> W::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has the features `avx512` is compiled with (checked just above).
            return unsafe { avx512(work) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2(work) };
        }
    }
    work.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn avx512<W: Wide>(work: W) -> W::Output {
    work.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<W: Wide>(work: W) -> W::Output {
    work.run()
}

#[cfg(test)]
mod tests {
    use super::{widest, Wide};

    /// A multiply-add per element and an ordered sum.
    struct MultiplyAdd<'a> {
        a: &'a [f32],
        b: &'a [f32],
    }

    impl Wide for MultiplyAdd<'_> {
        type Output = (Vec<f32>, f32);
        #[inline(always)]
        fn run(self) -> (Vec<f32>, f32) {
            let mut out: Vec<f32> = self.b.to_vec();
            for (o, &x) in out.iter_mut().zip(self.a) {
                *o += 0.3 * x;
            }
            let sum: f32 = out.iter().zip(self.a).map(|(o, x)| o * x).sum();
            (out, sum)
        }
    }

    #[test]
    fn wide_loops_give_the_floats_of_plain_ones() {
        // The wide path must round each step as the plain loop does (no fused multiply-add,
        // no reassociated sum).
        let a: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1000).map(|i| (i as f32 * 1.91).cos() * 3.1).collect();
        let (out, sum) = MultiplyAdd { a: &a, b: &b }.run();
        let (wide_out, wide_sum) = widest(MultiplyAdd { a: &a, b: &b });
        assert_eq!(out, wide_out);
        assert_eq!(sum.to_bits(), wide_sum.to_bits());
    }
}
