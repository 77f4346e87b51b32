//! Learning-rate schedules (`[schedule]`): the rate of every step, as a pure function of the
//! step, so a resumed run needs no schedule state. Step `t` counts from 1; the rate of step `t`
//! is the one its update uses. A linear warmup over `warmup_steps` comes first for every kind.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    #[default]
    Constant,
    Step,
    Multistep,
    Exponential,
    Cosine,
    Linear,
}

/// PyTorch's default decay factor for step and multistep schedules.
fn default_gamma() -> f64 {
    0.1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    #[serde(default)]
    pub kind: ScheduleKind,
    #[serde(default)]
    pub warmup_steps: u64,
    /// Floor of the cosine and linear schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    /// Steps between decays (step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<u64>,
    /// Decay factor: per `step_size` steps (step), per milestone (multistep), per step
    /// (exponential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// Steps at which the rate is multiplied by `gamma` (multistep), ascending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestones: Option<Vec<u64>>,
}

impl ScheduleConfig {
    /// Fills in the defaults of the kind (so they show in the canonical config), or says what
    /// is missing or wrong, as (key, message).
    pub fn resolve(&mut self) -> Result<(), (&'static str, String)> {
        match self.kind {
            ScheduleKind::Cosine | ScheduleKind::Linear => {
                self.min_lr.get_or_insert(0.0);
            }
            ScheduleKind::Step => {
                if self.step_size.is_none() {
                    return Err((
                        "schedule.step_size",
                        "is required for kind = \"step\"".into(),
                    ));
                }
                self.gamma.get_or_insert_with(default_gamma);
            }
            ScheduleKind::Multistep => {
                let Some(m) = &self.milestones else {
                    return Err((
                        "schedule.milestones",
                        "is required for kind = \"multistep\"".into(),
                    ));
                };
                if m.windows(2).any(|w| w[0] >= w[1]) {
                    return Err((
                        "schedule.milestones",
                        format!("{m:?}: the milestones must be strictly increasing"),
                    ));
                }
                self.gamma.get_or_insert_with(default_gamma);
            }
            ScheduleKind::Exponential => {
                if self.gamma.is_none() {
                    return Err((
                        "schedule.gamma",
                        "is required for kind = \"exponential\" (the factor per step)".into(),
                    ));
                }
            }
            ScheduleKind::Constant => {}
        }
        Ok(())
    }

    /// Whether the rates depend on the number of steps (cosine and linear decay over the run).
    pub fn depends_on_length(&self) -> bool {
        matches!(self.kind, ScheduleKind::Cosine | ScheduleKind::Linear)
    }

    /// Whether the rate is the base rate at every step: the same run as no schedule.
    pub fn is_constant(&self) -> bool {
        self.kind == ScheduleKind::Constant && self.warmup_steps == 0
    }

    /// The rate of step `t` (from 1) of `total`, for the base rate `lr`.
    pub fn lr_at(&self, lr: f64, t: u64, total: u64) -> f64 {
        let w = self.warmup_steps;
        if t <= w {
            return lr * t as f64 / w as f64;
        }
        let u = (t - w) as f64;
        let span = total.saturating_sub(w).max(1) as f64;
        let min = self.min_lr.unwrap_or(0.0);
        let gamma = self.gamma.unwrap_or(1.0);
        match self.kind {
            ScheduleKind::Constant => lr,
            ScheduleKind::Cosine => {
                min + (lr - min) * (1.0 + (std::f64::consts::PI * u / span).cos()) / 2.0
            }
            ScheduleKind::Linear => lr + (min - lr) * u / span,
            ScheduleKind::Step => {
                let size = self.step_size.unwrap_or(1).max(1) as f64;
                lr * gamma.powf((u / size).floor())
            }
            ScheduleKind::Multistep => {
                let passed = self
                    .milestones
                    .iter()
                    .flatten()
                    .filter(|&&m| m <= t)
                    .count();
                lr * gamma.powi(passed as i32)
            }
            ScheduleKind::Exponential => lr * gamma.powf(u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(text: &str) -> ScheduleConfig {
        let mut s: ScheduleConfig = toml::from_str(text).unwrap();
        s.resolve().unwrap();
        s
    }

    /// Rates from PyTorch 2.x's schedulers (`bench/schedules_from_torch.py`, run once; the
    /// values are its output): step t's rate is the optimizer's lr after t - 1 scheduler steps,
    /// warmup as LinearLR(start_factor = 1/W, total_iters = W - 1) followed by the kind's
    /// scheduler (SequentialLR), base lr 0.1, 20 steps.
    const TORCH: &[(&str, [f64; 20])] = include!("schedule_torch_values.in");

    #[test]
    fn rates_match_pytorch_schedulers() {
        for (text, want) in TORCH {
            let s = schedule(&text.replace("; ", "\n"));
            for (t, want) in (1..=20).zip(want) {
                let got = s.lr_at(0.1, t, 20);
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1e-12),
                    "{text} step {t}: {got} vs torch {want}"
                );
            }
        }
    }

    #[test]
    fn kinds_check_their_keys() {
        let mut s: ScheduleConfig = toml::from_str("kind = \"step\"").unwrap();
        assert_eq!(s.resolve().unwrap_err().0, "schedule.step_size");
        let mut s: ScheduleConfig =
            toml::from_str("kind = \"multistep\"\nmilestones = [5, 3]").unwrap();
        assert!(s.resolve().unwrap_err().1.contains("increasing"));
        assert!(schedule("kind = \"constant\"").is_constant());
        assert!(!schedule("warmup_steps = 3").is_constant());
    }
}
