//! Early-stopping rules as a sweep file declares them and a trial process receives them.

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    Median { min_trials: usize },
    Asha { min_steps: u64, eta: u64 },
}

impl Rule {
    /// The hidden `--early-stop` argument that carries the rule to a trial process.
    pub fn to_arg(self) -> String {
        match self {
            Rule::Median { min_trials } => format!("median:{min_trials}"),
            Rule::Asha { min_steps, eta } => format!("asha:{min_steps}:{eta}"),
        }
    }

    pub fn from_arg(s: &str) -> Result<Rule, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| {
            p.parse::<u64>()
                .map_err(|_| format!("--early-stop {s}: bad number {p:?}"))
        };
        match parts.as_slice() {
            ["median", n] => Ok(Rule::Median {
                min_trials: num(n)? as usize,
            }),
            ["asha", r, e] if num(r)? >= 1 && num(e)? >= 2 => Ok(Rule::Asha {
                min_steps: num(r)?,
                eta: num(e)?,
            }),
            _ => Err(format!(
                "--early-stop {s}: expected median:N or asha:MIN_STEPS:ETA (ETA >= 2)"
            )),
        }
    }

    /// Whether `step` is a rung where ASHA decides (every evaluation for the median rule).
    pub fn decides_at(self, step: u64) -> bool {
        match self {
            Rule::Median { .. } => true,
            Rule::Asha { min_steps, eta } => {
                let mut rung = min_steps;
                while rung < step {
                    rung = rung.saturating_mul(eta);
                }
                rung == step
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_and_asha_rungs() {
        for r in [
            Rule::Median { min_trials: 3 },
            Rule::Asha {
                min_steps: 100,
                eta: 3,
            },
        ] {
            assert_eq!(Rule::from_arg(&r.to_arg()).unwrap(), r);
        }
        assert!(Rule::from_arg("asha:100:1").is_err());
        let asha = Rule::Asha {
            min_steps: 100,
            eta: 3,
        };
        let rungs: Vec<u64> = (1..=1000).filter(|&s| asha.decides_at(s)).collect();
        assert_eq!(rungs, [100, 300, 900]);
    }
}
