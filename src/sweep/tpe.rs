//! The Tree-structured Parzen Estimator, as Optuna's `TPESampler` computes it by default
//! (independent per parameter, prior on, magic clip on, 24 expected-improvement candidates):
//! the finished trials split into the best `gamma(n) = min(ceil(0.1 n), 25)` and the rest, a
//! Parzen estimator (a mixture of truncated normals, or of category weights) over each part, and
//! the candidate drawn from the good part's estimator that maximises `l(x) / g(x)`.
//!
//! A proposal is a pure function of the observations (in the order given) and the random
//! generator, so a sweep that replays its journal proposes the same trials.

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

/// Candidates drawn from the good trials' estimator per proposal (Optuna's `n_ei_candidates`).
const CANDIDATES: usize = 24;
/// Weight of the prior component (Optuna's `prior_weight`).
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

/// The next trial's parameters given the finished trials, in the order they finished. Fewer
/// than `startup` observations: a draw from the prior.
pub fn propose(
    space: &[Space],
    observed: &[Observation],
    startup: usize,
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
    // Within each part, the finishing order (Optuna weighs older trials less).
    good.sort_unstable();
    bad.sort_unstable();
    space
        .iter()
        .enumerate()
        .map(|(p, s)| {
            let values = |idx: &[usize]| idx.iter().map(|&i| finite[i].params[p]).collect();
            propose_one(s, values(&good), values(&bad), rng)
        })
        .collect()
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

fn propose_one(space: &Space, good: Vec<f64>, bad: Vec<f64>, rng: &mut impl Rng) -> f64 {
    match *space {
        Space::Choice(n) => {
            let l = Categorical::fit(n, &good);
            let g = Categorical::fit(n, &bad);
            best_candidate((0..CANDIDATES).map(|_| l.sample(rng) as f64), |c| {
                l.log_pdf(c as usize) - g.log_pdf(c as usize)
            })
        }
        Space::Float { lo, hi, log } => {
            let t = |x: f64| if log { x.ln() } else { x };
            let inv = |x: f64| if log { x.exp() } else { x };
            let (a, b) = (t(lo), t(hi));
            let map = |v: Vec<f64>| v.into_iter().map(t).collect::<Vec<_>>();
            let l = Parzen::fit(a, b, &map(good));
            let g = Parzen::fit(a, b, &map(bad));
            let x = best_candidate((0..CANDIDATES).map(|_| l.sample(rng)), |x| {
                l.log_pdf(x) - g.log_pdf(x)
            });
            inv(x).clamp(lo, hi)
        }
        Space::Int { lo, hi } => {
            // Optuna's integers: reals on [lo - 0.5, hi + 0.5], rounded.
            let (a, b) = (lo as f64 - 0.5, hi as f64 + 0.5);
            let l = Parzen::fit(a, b, &good);
            let g = Parzen::fit(a, b, &bad);
            let x = best_candidate((0..CANDIDATES).map(|_| l.sample(rng)), |x| {
                l.log_pdf(x) - g.log_pdf(x)
            });
            x.round().clamp(lo as f64, hi as f64)
        }
    }
}

/// The candidate with the largest score; the first of equals.
fn best_candidate(candidates: impl Iterator<Item = f64>, score: impl Fn(f64) -> f64) -> f64 {
    let mut best = (f64::NEG_INFINITY, f64::NAN);
    for c in candidates {
        let s = score(c);
        if s > best.0 || best.1.is_nan() {
            best = (s, c);
        }
    }
    best.1
}

/// A mixture of normals truncated to `[lo, hi]`: one per observation and one wide prior.
struct Parzen {
    lo: f64,
    hi: f64,
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    /// Normalised.
    weights: Vec<f64>,
}

impl Parzen {
    fn fit(lo: f64, hi: f64, obs: &[f64]) -> Parzen {
        let n = obs.len();
        let mut w = weights(n);
        let mut mus = obs.to_vec();
        mus.push(0.5 * (lo + hi));
        w.push(PRIOR_WEIGHT);
        // Bandwidths as Optuna's univariate estimator: the means sorted between the bounds,
        // each the larger gap to its neighbours, the first and last their inner gap only
        // (`consider_endpoints=False`), clipped to [(hi - lo) / min(100, n + 4), hi - lo] (the
        // "magic clip"); the prior's is hi - lo.
        let mut order: Vec<usize> = (0..mus.len()).collect();
        order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]).then(a.cmp(&b)));
        let mut ends = vec![lo];
        ends.extend(order.iter().map(|&i| mus[i]));
        ends.push(hi);
        let m = order.len();
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
        let min_sigma = (hi - lo) / (100.0f64).min(n as f64 + 4.0);
        for s in &mut sigmas {
            *s = s.clamp(min_sigma, max_sigma);
        }
        *sigmas.last_mut().expect("the prior") = max_sigma;
        let total: f64 = w.iter().sum();
        Parzen {
            lo,
            hi,
            mus,
            sigmas,
            weights: w.into_iter().map(|x| x / total).collect(),
        }
    }

    fn sample(&self, rng: &mut impl Rng) -> f64 {
        let k = pick(&self.weights, rng);
        let (mu, sigma) = (self.mus[k], self.sigmas[k]);
        // Rejection from the normal; the component holds at least a fair share of its mass in
        // the range (its mean is inside), so this ends quickly.
        for _ in 0..1000 {
            let x = mu + sigma * standard_normal(rng);
            if (self.lo..=self.hi).contains(&x) {
                return x;
            }
        }
        mu.clamp(self.lo, self.hi)
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let p: f64 = (0..self.mus.len())
            .map(|k| {
                let (mu, s) = (self.mus[k], self.sigmas[k]);
                let mass = phi((self.hi - mu) / s) - phi((self.lo - mu) / s);
                let z = (x - mu) / s;
                self.weights[k] * (-0.5 * z * z).exp()
                    / (s * (2.0 * std::f64::consts::PI).sqrt() * mass.max(1e-300))
            })
            .sum();
        p.max(1e-300).ln()
    }
}

/// Category probabilities as Optuna's estimator: a mixture of one kernel per observation (the
/// prior spread evenly, `prior_weight / kernels` on every category, plus 1 on the observed one,
/// normalised) and a uniform prior kernel, weighted as the observations are.
struct Categorical {
    probs: Vec<f64>,
}

impl Categorical {
    fn fit(n: usize, obs: &[f64]) -> Categorical {
        let mut w = weights(obs.len());
        w.push(PRIOR_WEIGHT);
        let total: f64 = w.iter().sum();
        let kernels = obs.len() + 1;
        let fill = PRIOR_WEIGHT / kernels as f64;
        let row = 1.0 + fill * n as f64;
        let mut probs = vec![0.0; n];
        for (o, wi) in obs.iter().zip(&w) {
            for (c, p) in probs.iter_mut().enumerate() {
                let k = if c == *o as usize { fill + 1.0 } else { fill };
                *p += wi / total * k / row;
            }
        }
        for p in &mut probs {
            *p += PRIOR_WEIGHT / total / n as f64;
        }
        Categorical { probs }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        pick(&self.probs, rng)
    }

    fn log_pdf(&self, c: usize) -> f64 {
        self.probs[c].ln()
    }
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

    /// Best loss after `budget` trials of `objective`, proposing with TPE or at random.
    fn search(
        space: &[Space],
        objective: impl Fn(&[f64]) -> f64,
        budget: usize,
        seed: u64,
        tpe: bool,
    ) -> f64 {
        let mut observed: Vec<Observation> = Vec::new();
        for i in 0..budget {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64);
            let params = if tpe {
                propose(space, &observed, 10, &mut rng)
            } else {
                sample_prior(space, &mut rng)
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

    #[test]
    fn normal_pdf_of_a_wide_mixture_integrates_to_one() {
        let p = Parzen::fit(-2.0, 3.0, &[0.0, 0.5, 2.9]);
        let steps = 20000;
        let h = 5.0 / steps as f64;
        let integral: f64 = (0..steps)
            .map(|i| p.log_pdf(-2.0 + (i as f64 + 0.5) * h).exp() * h)
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
        let c = Categorical::fit(4, &[2.0]);
        let want = [0.5 / 3.0 / 2.0 + 0.125, 0.0, 1.5 / 3.0 / 2.0 + 0.125, 0.0];
        assert!((c.probs[2] - want[2]).abs() < 1e-12 && (c.probs[0] - want[0]).abs() < 1e-12);
        assert!((c.probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
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
        let tpe: Vec<f64> = (0..9)
            .map(|s| search(&space, objective, 40, s, true))
            .collect();
        let random: Vec<f64> = (0..9)
            .map(|s| search(&space, objective, 40, s, false))
            .collect();
        let (t, r) = (median(tpe), median(random));
        eprintln!("median best after 40 trials over 9 seeds: TPE {t:.4}, random {r:.4}");
        assert!(
            t < r / 2.0,
            "median best after 40 trials: TPE {t}, random {r}"
        );
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
        let run = |stream| {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            rng.set_stream(stream);
            propose(&space, &obs, 10, &mut rng)
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        // Start-up: fewer observations than `startup` draw from the prior.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let prior = propose(&space, &obs[..5], 10, &mut rng);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(prior, sample_prior(&space, &mut rng));
    }
}
