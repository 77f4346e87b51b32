//! Which vector kernels run, chosen once per process: the best this CPU has, or the one that
//! `RUNNER_ISA` names (`avx512`, `avx2`), so that one machine can run every path it has. The
//! kernels of both paths sum in the same order (16 logical lanes; AVX2 holds them in two
//! registers), so the choice changes speed, not bits. runner's own kernels follow this choice.

/// The environment variable that forces a path.
pub const ENV: &str = "RUNNER_ISA";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    /// The instruction sets this CPU has, best first (AVX2 counts only with FMA).
    pub fn available() -> Vec<Isa> {
        let mut sets = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                sets.push(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                sets.push(Isa::Avx2);
            }
        }
        sets
    }

    /// The name `RUNNER_ISA` and `meta.json` use.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
        }
    }

    fn named(name: &str) -> Option<Isa> {
        match name {
            #[cfg(target_arch = "x86_64")]
            "avx512" => Some(Isa::Avx512),
            #[cfg(target_arch = "x86_64")]
            "avx2" => Some(Isa::Avx2),
            _ => None,
        }
    }
}

/// The path `RUNNER_ISA` asks for (or the best this CPU has when it is unset or `auto`), checked
/// against this CPU; `Ok(None)` where the CPU has neither path (the generic kernels run, whose
/// order is not fixed). `Err` says what is wrong with the variable.
pub fn choose() -> Result<Option<Isa>, String> {
    let available = Isa::available();
    let wanted = std::env::var(ENV).unwrap_or_default();
    match wanted.trim() {
        "" | "auto" => Ok(available.first().copied()),
        name => match Isa::named(name) {
            Some(isa) if available.contains(&isa) => Ok(Some(isa)),
            Some(_) => Err(format!(
                "{ENV}={name}: this CPU cannot run it; it can run {}",
                names(&available)
            )),
            None => Err(format!(
                "{ENV}={name}: expected avx512, avx2 or auto; this CPU can run {}",
                names(&available)
            )),
        },
    }
}

fn names(sets: &[Isa]) -> String {
    if sets.is_empty() {
        "neither (no AVX2 with FMA)".into()
    } else {
        sets.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
    }
}

/// The path of this process (see [`choose`]). A bad `RUNNER_ISA` panics here: programs check
/// [`choose`] first to report it properly.
pub fn selected() -> Option<Isa> {
    static SELECTED: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
    *SELECTED.get_or_init(|| choose().unwrap_or_else(|e| panic!("{e}")))
}
