//! Summary statistics for seed replicates and Welch's t-test.

/// Mean and sample standard deviation (n - 1); the deviation is `None` for fewer than two values.
pub fn mean_std(xs: &[f64]) -> Option<(f64, Option<f64>)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let std = (xs.len() > 1)
        .then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, std))
}

/// Two-sided p-value of Welch's unequal-variance t-test; `None` with fewer than two values in a
/// group or zero variance in both.
pub fn welch_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ma, sa) = mean_std(a)?;
    let (mb, sb) = mean_std(b)?;
    let (va, vb) = (sa?.powi(2) / a.len() as f64, sb?.powi(2) / b.len() as f64);
    if va + vb == 0.0 {
        return None;
    }
    let t = (ma - mb) / (va + vb).sqrt();
    let df = (va + vb).powi(2)
        / (va.powi(2) / (a.len() as f64 - 1.0) + vb.powi(2) / (b.len() as f64 - 1.0));
    Some(student_t_two_sided(t, df))
}

/// P(|T| > |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    regularized_beta(df / (df + t * t), df / 2.0, 0.5)
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0.
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function I_x(a, b) by Lentz's continued fraction.
pub fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - regularized_beta(1.0 - x, b, a);
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp() / a;
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    d = 1.0 / if d.abs() < tiny { tiny } else { d };
    let mut f = d;
    for m in 1..=300 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < tiny { tiny } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < tiny { tiny } else { c };
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    front * f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_distribution_matches_table_values() {
        // Two-sided 5 % critical values from standard t tables.
        for (t, df) in [(12.706, 1.0), (2.228, 10.0), (2.042, 30.0), (1.960, 1e7)] {
            let p = student_t_two_sided(t, df);
            assert!((p - 0.05).abs() < 2e-4, "t={t} df={df}: p={p}");
        }
        assert!((student_t_two_sided(0.0, 5.0) - 1.0).abs() < 1e-12);
        // 1 % critical value at df = 5.
        assert!((student_t_two_sided(4.032, 5.0) - 0.01).abs() < 1e-4);
    }

    #[test]
    fn welch_test_on_a_known_example() {
        // scipy.stats.ttest_ind(a, b, equal_var=False) gives t = -2.4554, df = 24.99, p = 0.021378.
        let a = [
            27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7,
            21.4,
        ];
        let b = [
            27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5,
            24.4,
        ];
        let p = welch_p(&a, &b).unwrap();
        assert!((p - 0.021378).abs() < 1e-5, "{p}");
        assert_eq!(welch_p(&[1.0], &b), None);
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(m, 2.5);
        assert!((s.unwrap() - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), Some((5.0, None)));
    }
}
