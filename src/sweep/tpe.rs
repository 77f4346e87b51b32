//! The Tree-structured Parzen Estimator, as Optuna 5's `TPESampler` computes it: the finished
//! trials split into the best `gamma(n) = min(ceil(0.1 n), 25)` and the rest, a Parzen estimator
//! (a weighted mixture of kernels, one per trial plus a wide prior) over each part, and of
//! `candidates` draws from the good part's estimator the one that maximises `l(x) / g(x)`.
//!
//! Two options change what is estimated, as in Optuna: `multivariate` (Optuna 5's default for one
//! objective) makes each kernel a product over all parameters, so a draw keeps one good trial's
//! values together and the ratio is of joint densities; otherwise each parameter is proposed on
//! its own. `constant_liar` (Optuna 5's default) counts the trials still running as bad ones, so
//! parallel workers do not propose the same point twice.
//!
//! A proposal is a pure function of the observations (in the order given), the running trials
//! and the random generator, so a sweep that replays its journal proposes the same trials.

use rand::Rng;

/// One parameter's range.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// Reals in `[lo, hi]`, searched on a log scale with `log`.
    Float { lo: f64, hi: f64, log: bool },
    /// Integers in `lo..=hi`.
    Int { lo: i64, hi: i64 },
    /// An index into `n` choices.
    Choice(usize),
}

/// A finished trial: one value per parameter (reals as they are, integers as `f64`, choices as
/// their index) and the objective, lower is better.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub params: Vec<f64>,
    pub loss: f64,
}

pub use runner_spec::sweep::TpeOptions as Options;

/// Weight of the prior kernel (Optuna's `prior_weight`).
const PRIOR_WEIGHT: f64 = 1.0;

/// A uniform draw from the space, for the start-up trials.
pub fn sample_prior(space: &[Space], rng: &mut impl Rng) -> Vec<f64> {
    space
        .iter()
        .map(|s| match *s {
            Space::Float { lo, hi, log: true } => rng.gen_range(lo.ln()..=hi.ln()).exp(),
            Space::Float { lo, hi, log: false } => rng.gen_range(lo..=hi),
            Space::Int { lo, hi } => rng.gen_range(lo..=hi) as f64,
            Space::Choice(n) => rng.gen_range(0..n) as f64,
        })
        .collect()
}

/// The next trial's parameters given the finished trials, in the order they finished, and the
/// parameters of the trials still running. Fewer than `startup` finished: a draw from the prior.
pub fn propose(
    space: &[Space],
    observed: &[Observation],
    running: &[Vec<f64>],
    startup: usize,
    options: &Options,
    rng: &mut impl Rng,
) -> Vec<f64> {
    let finite: Vec<&Observation> = observed.iter().filter(|o| o.loss.is_finite()).collect();
    if finite.len() < startup.max(1) {
        return sample_prior(space, rng);
    }
    // Best first; ties keep the finishing order, so the split is deterministic.
    let mut order: Vec<usize> = (0..finite.len()).collect();
    order.sort_by(|&a, &b| finite[a].loss.total_cmp(&finite[b].loss).then(a.cmp(&b)));
    let n_good = gamma(finite.len());
    let mut good: Vec<usize> = order[..n_good].to_vec();
    let mut bad: Vec<usize> = order[n_good..].to_vec();
    // Within each part, the finishing order (Optuna weighs older trials less); running trials
    // come last, as the newest.
    good.sort_unstable();
    bad.sort_unstable();
    let good: Vec<&[f64]> = good.iter().map(|&i| finite[i].params.as_slice()).collect();
    let mut bad: Vec<&[f64]> = bad.iter().map(|&i| finite[i].params.as_slice()).collect();
    if options.constant_liar {
        bad.extend(running.iter().map(Vec::as_slice));
    }
    let groups: Vec<Vec<usize>> = if options.multivariate {
        vec![(0..space.len()).collect()]
    } else {
        (0..space.len()).map(|p| vec![p]).collect()
    };
    let mut x = vec![0.0; space.len()];
    for dims in groups {
        let l = Mixture::fit(space, &dims, &good);
        let g = Mixture::fit(space, &dims, &bad);
        let mut best = (f64::NEG_INFINITY, None);
        for _ in 0..options.candidates.max(1) {
            let c = l.sample(rng);
            let score = l.log_pdf(&c) - g.log_pdf(&c);
            if best.1.is_none() || score > best.0 {
                best = (score, Some(c));
            }
        }
        let best = best.1.expect("at least one candidate");
        for (&d, v) in dims.iter().zip(best) {
            x[d] = from_internal(&space[d], v);
        }
    }
    x
}

/// How many of `n` finished trials count as good.
fn gamma(n: usize) -> usize {
    (n.div_ceil(10)).clamp(1, 25)
}

/// Optuna's default weights: equal for the last 25 observations, ramping up from `1/n` for
/// older ones.
fn weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

/// A Parzen estimator over some parameters: kernel `k` (one per observation, the prior last)
/// has weight `weights[k]` and, per parameter, its own one-dimensional kernel.
struct Mixture {
    /// Normalised.
    weights: Vec<f64>,
    dims: Vec<Kernels>,
}

/// One parameter's kernels, one per mixture component.
enum Kernels {
    /// Normals truncated to `[lo, hi]` (log-scaled reals in log space; integers on
    /// `[lo - 0.5, hi + 0.5]`, rounded), with `log(mass in range)` per kernel.
    Normal {
        lo: f64,
        hi: f64,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        log_mass: Vec<f64>,
    },
    /// Category probabilities per kernel.
    Categorical(Vec<Vec<f64>>),
}

impl Mixture {
    fn fit(space: &[Space], dims: &[usize], obs: &[&[f64]]) -> Mixture {
        let mut w = weights(obs.len());
        w.push(PRIOR_WEIGHT);
        let total: f64 = w.iter().sum();
        Mixture {
            weights: w.into_iter().map(|x| x / total).collect(),
            dims: dims
                .iter()
                .map(|&d| Kernels::fit(&space[d], obs.iter().map(|o| o[d])))
                .collect(),
        }
    }

    /// One draw: a kernel, then each parameter from it.
    fn sample(&self, rng: &mut impl Rng) -> Vec<f64> {
        let k = pick(&self.weights, rng);
        self.dims.iter().map(|d| d.sample(k, rng)).collect()
    }

    fn log_pdf(&self, x: &[f64]) -> f64 {
        let terms: Vec<f64> = (0..self.weights.len())
            .map(|k| {
                self.weights[k].ln()
                    + self
                        .dims
                        .iter()
                        .zip(x)
                        .map(|(d, &v)| d.log_pdf(k, v))
                        .sum::<f64>()
            })
            .collect();
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return max;
        }
        max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    }
}

impl Kernels {
    fn fit(space: &Space, obs: impl Iterator<Item = f64>) -> Kernels {
        let (lo, hi) = match *space {
            Space::Choice(n) => return Kernels::categorical(n, obs),
            Space::Float { lo, hi, log: true } => (lo.ln(), hi.ln()),
            Space::Float { lo, hi, log: false } => (lo, hi),
            // Optuna's integers: reals on [lo - 0.5, hi + 0.5], rounded.
            Space::Int { lo, hi } => (lo as f64 - 0.5, hi as f64 + 0.5),
        };
        let log = matches!(space, Space::Float { log: true, .. });
        let mut mus: Vec<f64> = obs.map(|x| if log { x.ln() } else { x }).collect();
        let mut sigmas = bandwidths(lo, hi, &mus);
        // The prior: centred, as wide as the range.
        mus.push(0.5 * (lo + hi));
        sigmas.push(hi - lo);
        let log_mass = mus
            .iter()
            .zip(&sigmas)
            .map(|(&mu, &s)| (phi((hi - mu) / s) - phi((lo - mu) / s)).max(1e-300).ln())
            .collect();
        Kernels::Normal {
            lo,
            hi,
            mus,
            sigmas,
            log_mass,
        }
    }

    /// Optuna's categorical kernels: per observation the prior spread evenly
    /// (`prior_weight / kernels` on every category) plus 1 on the observed one, normalised; the
    /// prior kernel uniform.
    fn categorical(n: usize, obs: impl Iterator<Item = f64>) -> Kernels {
        let obs: Vec<usize> = obs.map(|o| o as usize).collect();
        let fill = PRIOR_WEIGHT / (obs.len() + 1) as f64;
        let row = 1.0 + fill * n as f64;
        let mut rows: Vec<Vec<f64>> = obs
            .iter()
            .map(|&o| {
                (0..n)
                    .map(|c| if c == o { fill + 1.0 } else { fill } / row)
                    .collect()
            })
            .collect();
        rows.push(vec![1.0 / n as f64; n]);
        Kernels::Categorical(rows)
    }

    fn sample(&self, k: usize, rng: &mut impl Rng) -> f64 {
        match self {
            Kernels::Categorical(rows) => pick(&rows[k], rng) as f64,
            Kernels::Normal {
                lo,
                hi,
                mus,
                sigmas,
                ..
            } => {
                let (mu, sigma) = (mus[k], sigmas[k]);
                // Rejection from the normal; the mean is inside, so at least a fair share of
                // the mass is, and this ends quickly.
                for _ in 0..1000 {
                    let x = mu + sigma * standard_normal(rng);
                    if (*lo..=*hi).contains(&x) {
                        return x;
                    }
                }
                mu.clamp(*lo, *hi)
            }
        }
    }

    fn log_pdf(&self, k: usize, x: f64) -> f64 {
        match self {
            Kernels::Categorical(rows) => rows[k][x as usize].ln(),
            Kernels::Normal {
                mus,
                sigmas,
                log_mass,
                ..
            } => {
                let (mu, s) = (mus[k], sigmas[k]);
                let z = (x - mu) / s;
                -0.5 * z * z - (s * (2.0 * std::f64::consts::PI).sqrt()).ln() - log_mass[k]
            }
        }
    }
}

/// A value drawn by the estimator (log-scaled reals in log space) as the parameter's value.
fn from_internal(space: &Space, x: f64) -> f64 {
    match *space {
        Space::Float { lo, hi, log } => if log { x.exp() } else { x }.clamp(lo, hi),
        Space::Int { lo, hi } => x.round().clamp(lo as f64, hi as f64),
        Space::Choice(_) => x,
    }
}

/// Optuna 5's bandwidths: the observations sorted between the bounds, each kernel's sigma the
/// larger gap to its neighbours, the first and last their inner gap only
/// (`consider_endpoints=False`), clipped to `[(hi - lo) / min(100, n + 2), hi - lo]` (the
/// "magic clip"; `n + 1` kernels with the prior).
fn bandwidths(lo: f64, hi: f64, mus: &[f64]) -> Vec<f64> {
    let m = mus.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]).then(a.cmp(&b)));
    let mut ends = vec![lo];
    ends.extend(order.iter().map(|&i| mus[i]));
    ends.push(hi);
    let mut sigmas = vec![0.0; m];
    for (k, &i) in order.iter().enumerate() {
        let (left, mid, right) = (ends[k], ends[k + 1], ends[k + 2]);
        sigmas[i] = if m >= 2 && k == 0 {
            right - mid
        } else if m >= 2 && k == m - 1 {
            mid - left
        } else {
            (mid - left).max(right - mid)
        };
    }
    let max_sigma = hi - lo;
    let min_sigma = (hi - lo) / (100.0f64).min(m as f64 + 2.0);
    sigmas
        .into_iter()
        .map(|s| s.clamp(min_sigma, max_sigma))
        .collect()
}

/// An index drawn with the given (normalised) probabilities.
fn pick(probs: &[f64], rng: &mut impl Rng) -> usize {
    let mut u: f64 = rng.gen();
    for (i, p) in probs.iter().enumerate() {
        if u < *p {
            return i;
        }
        u -= p;
    }
    probs.len() - 1
}

/// Box-Muller, one value per call (the generator's stream fixes the result).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The standard normal CDF.
fn phi(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Best loss after `budget` trials of `objective`, proposing with TPE (these options) or at
    /// random.
    fn search(
        space: &[Space],
        objective: impl Fn(&[f64]) -> f64,
        budget: usize,
        seed: u64,
        tpe: Option<Options>,
    ) -> f64 {
        let mut observed: Vec<Observation> = Vec::new();
        for i in 0..budget {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64);
            let params = match &tpe {
                Some(o) => propose(space, &observed, &[], 10, o, &mut rng),
                None => sample_prior(space, &mut rng),
            };
            let loss = objective(&params);
            observed.push(Observation { params, loss });
        }
        observed
            .iter()
            .map(|o| o.loss)
            .fold(f64::INFINITY, f64::min)
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    const LR: Space = Space::Float {
        lo: 1e-4,
        hi: 1e-1,
        log: true,
    };
    const UNIT_HALF: Space = Space::Float {
        lo: 0.0,
        hi: 0.5,
        log: false,
    };

    #[test]
    fn densities_are_optunas() {
        // Optuna 5.1's _ParzenEstimator (prior weight 1, magic clip, no endpoints, default
        // weights) over these observations, log_pdf at these points, as Optuna printed them.
        let space = [LR, Space::Choice(3), UNIT_HALF];
        let obs: Vec<Vec<f64>> = vec![
            vec![1e-3, 0.0, 0.1],
            vec![3e-3, 2.0, 0.45],
            vec![2e-2, 2.0, 0.2],
        ];
        let obs: Vec<&[f64]> = obs.iter().map(Vec::as_slice).collect();
        let joint = Mixture::fit(&space, &[0, 1, 2], &obs);
        let lr = Mixture::fit(&space, &[0], &obs);
        let points = [[1e-3f64, 0.0, 0.1], [5e-4, 1.0, 0.3], [5e-2, 2.0, 0.0]];
        let optuna_joint = [-1.22070189, -3.05659492, -2.28585278];
        let optuna_lr = [-1.71658301, -1.90155315, -2.17577121];
        for (p, (j, l)) in points.iter().zip(optuna_joint.iter().zip(optuna_lr)) {
            let x = [p[0].ln(), p[1], p[2]];
            assert!(
                (joint.log_pdf(&x) - j).abs() < 1e-7,
                "{p:?}: {}",
                joint.log_pdf(&x)
            );
            assert!(
                (lr.log_pdf(&x[..1]) - l).abs() < 1e-7,
                "{p:?}: {}",
                lr.log_pdf(&x[..1])
            );
        }
    }

    #[test]
    fn normal_pdf_of_a_wide_mixture_integrates_to_one() {
        let space = [Space::Float {
            lo: -2.0,
            hi: 3.0,
            log: false,
        }];
        let obs = [[0.0], [0.5], [2.9]];
        let obs: Vec<&[f64]> = obs.iter().map(|o| o.as_slice()).collect();
        let p = Mixture::fit(&space, &[0], &obs);
        let steps = 20000;
        let h = 5.0 / steps as f64;
        let integral: f64 = (0..steps)
            .map(|i| p.log_pdf(&[-2.0 + (i as f64 + 0.5) * h]).exp() * h)
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        // Known values: the CDF at 0 and 1.96.
        assert!((phi(0.0) - 0.5).abs() < 1e-15);
        assert!((phi(1.959963984540054) - 0.975).abs() < 1e-12);
    }

    #[test]
    fn optuna_weights_and_split() {
        assert_eq!(weights(3), vec![1.0; 3]);
        let w = weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12);
        assert!(w[..5].windows(2).all(|p| p[0] < p[1]));
        assert!(w[5..].iter().all(|&x| x == 1.0));
        assert_eq!((gamma(1), gamma(10), gamma(11), gamma(400)), (1, 1, 2, 25));
        // Optuna's categorical estimator for one observation of category 2 of 4: kernels
        // (0.5, 0.5, 1.5, 0.5) / 3 and uniform, equally weighted.
        let c = Mixture::fit(&[Space::Choice(4)], &[0], &[&[2.0]]);
        let p = |x: f64| c.log_pdf(&[x]).exp();
        assert!((p(2.0) - (1.5 / 3.0 / 2.0 + 0.125)).abs() < 1e-12);
        assert!((p(0.0) - (0.5 / 3.0 / 2.0 + 0.125)).abs() < 1e-12);
        assert!(((0..4).map(|x| p(x as f64)).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn tpe_beats_random_search_on_a_log_scale_bowl() {
        // lr-like: the best value at 1e-3 on [1e-6, 1], plus an integer and a choice.
        let space = [
            Space::Float {
                lo: 1e-6,
                hi: 1.0,
                log: true,
            },
            Space::Int { lo: 1, hi: 64 },
            Space::Choice(4),
        ];
        let objective = |p: &[f64]| {
            (p[0].log10() + 3.0).powi(2)
                + ((p[1] - 20.0) / 20.0).powi(2)
                + [0.5, 0.0, 1.0, 0.7][p[2] as usize]
        };
        let random: Vec<f64> = (0..9)
            .map(|s| search(&space, objective, 40, s, None))
            .collect();
        let r = median(random);
        for multivariate in [false, true] {
            let o = Options {
                multivariate,
                ..Options::default()
            };
            let t = median(
                (0..9)
                    .map(|s| search(&space, objective, 40, s, Some(o)))
                    .collect(),
            );
            eprintln!(
                "median best after 40 trials over 9 seeds: TPE {t:.4} ({o:?}), random {r:.4}"
            );
            assert!(
                t < r / 2.0,
                "median best after 40 trials: TPE {t} ({o:?}), random {r}"
            );
        }
    }

    #[test]
    fn a_proposal_depends_only_on_the_observations_and_the_stream() {
        let space = [
            Space::Float {
                lo: 0.0,
                hi: 1.0,
                log: false,
            },
            Space::Choice(3),
        ];
        let obs: Vec<Observation> = (0..12)
            .map(|i| Observation {
                params: vec![i as f64 / 12.0, (i % 3) as f64],
                loss: (i as f64 / 12.0 - 0.3).abs(),
            })
            .collect();
        let o = Options::default();
        let run = |stream, running: &[Vec<f64>]| {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            rng.set_stream(stream);
            propose(&space, &obs, running, 10, &o, &mut rng)
        };
        assert_eq!(run(3, &[]), run(3, &[]));
        assert_ne!(run(3, &[]), run(4, &[]));
        // The constant liar: a running trial where this one would go counts as a bad one.
        let here = run(3, &[]);
        assert_ne!(run(3, std::slice::from_ref(&here)), here);
        // Start-up: fewer observations than `startup` draw from the prior.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let prior = propose(&space, &obs[..5], &[], 10, &o, &mut rng);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(prior, sample_prior(&space, &mut rng));
    }
}
