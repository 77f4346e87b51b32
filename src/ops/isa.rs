//! The vector instruction sets runner's own kernels (the conv blocks', the first dense layer's) are
//! compiled for, chosen at run time.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    /// `f32` lanes per register.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }

    /// Whether this process may run the instruction set (the CPU has it and `RUNNER_ISA` does
    /// not rule it out: see `gemm::isa`) and its registers split `channels` evenly.
    pub fn fits(self, channels: usize) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use gemm::isa::Isa as Path;
            channels.is_multiple_of(self.lanes())
                && matches!(
                    (self, gemm::isa::selected()),
                    (Isa::Avx512, Some(Path::Avx512)) | (Isa::Avx2, Some(_))
                )
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = channels;
            false
        }
    }

    /// Every instruction set that fits `channels`, best first.
    pub fn fitting(channels: usize) -> impl Iterator<Item = Isa> {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(move |isa| isa.fits(channels))
    }
}

/// Values in [-1, 1), uncorrelated between seeds (a multiply-xorshift hash), for tests.
#[cfg(test)]
pub fn test_values(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|j| {
            let mut h = (j ^ seed << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
            h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
