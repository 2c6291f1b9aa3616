//! Count statistics for the rate detectors: robust location and spread (median, MAD) and
//! count-aware tail probabilities (Poisson, negative binomial), so a sparse key's three calls and
//! a busy key's thirty thousand are judged on the same footing.

/// Median of `v` (reordered in place); `None` when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        Some(m)
    } else {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some((lo + m) / 2.0)
    }
}

/// Median absolute deviation from `center` (unscaled).
pub fn mad(v: &[f64], center: f64) -> f64 {
    let mut d: Vec<f64> = v.iter().map(|x| (x - center).abs()).collect();
    median(&mut d).unwrap_or(0.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
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
        // reflection
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized lower incomplete gamma P(a, x).
fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x < a + 1.0 {
        // series
        let mut sum = 1.0 / a;
        let mut term = sum;
        let mut ap = a;
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (sum.ln() - x + a * x.ln() - ln_gamma(a)).exp().min(1.0)
    } else {
        1.0 - gamma_q_cf(a, x)
    }
}

/// Regularized upper incomplete gamma Q(a, x) by continued fraction (x >= a + 1).
fn gamma_q_cf(a: f64, x: f64) -> f64 {
    let tiny = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..1000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    ((-x + a * x.ln() - ln_gamma(a)).exp() * h).clamp(0.0, 1.0)
}

/// Regularized upper incomplete gamma Q(a, x) = 1 - P(a, x), accurate in the far tail.
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        1.0 - gamma_p(a, x)
    } else {
        gamma_q_cf(a, x)
    }
}

/// Continued fraction for the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    let tiny = 1e-300;
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..3000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

/// Regularized incomplete beta I_x(a, b).
fn beta_i(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        (ln_front.exp() * beta_cf(a, b, x) / a).clamp(0.0, 1.0)
    } else {
        (1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b).clamp(0.0, 1.0)
    }
}

/// A count distribution with mean `mean` and variance `mean + phi * mean^2`: Poisson when
/// `phi` is (nearly) zero, negative binomial otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountDist {
    pub mean: f64,
    pub phi: f64,
}

impl CountDist {
    pub fn new(mean: f64, phi: f64) -> CountDist {
        CountDist {
            mean: mean.max(1e-9),
            phi: phi.max(0.0),
        }
    }

    /// The negative binomial with the same mean and variance `var` (at least the mean).
    pub fn with_variance(mean: f64, var: f64) -> CountDist {
        let mean = mean.max(1e-9);
        let phi = ((var - mean) / (mean * mean)).max(0.0);
        CountDist::new(mean, phi)
    }

    pub fn variance(&self) -> f64 {
        self.mean + self.phi * self.mean * self.mean
    }

    fn poissonish(&self) -> bool {
        self.phi * self.mean < 1e-4
    }

    /// P(X >= k).
    pub fn upper_tail(&self, k: f64) -> f64 {
        let k = k.ceil();
        if k <= 0.0 {
            return 1.0;
        }
        if self.poissonish() {
            // P(X >= k) = P(k, mean) (regularized lower gamma)
            gamma_p(k, self.mean)
        } else {
            let r = 1.0 / self.phi;
            let p = r / (r + self.mean);
            // P(X >= k) = I_{1-p}(k, r)
            beta_i(k, r, 1.0 - p)
        }
    }

    /// P(X <= k).
    pub fn lower_tail(&self, k: f64) -> f64 {
        let k = k.floor();
        if k < 0.0 {
            return 0.0;
        }
        if self.poissonish() {
            gamma_q(k + 1.0, self.mean)
        } else {
            let r = 1.0 / self.phi;
            let p = r / (r + self.mean);
            // P(X <= k) = I_p(r, k + 1)
            beta_i(r, k + 1.0, p)
        }
    }

    /// The smallest integer count `k` with P(X >= k) <= alpha: anything at or above it is in
    /// the tail.
    pub fn upper_quantile(&self, alpha: f64) -> f64 {
        let sd = self.variance().sqrt();
        let mut hi = (self.mean + 4.0 * sd + 10.0).ceil();
        while self.upper_tail(hi) > alpha {
            hi = (hi * 2.0).max(hi + 10.0);
            if hi > 1e12 {
                return hi;
            }
        }
        let mut lo = self.mean.floor().max(0.0);
        if self.upper_tail(lo) <= alpha {
            return lo;
        }
        // invariant: tail(lo) > alpha >= tail(hi)
        while hi - lo > 1.0 {
            let mid = ((lo + hi) / 2.0).floor();
            if self.upper_tail(mid) > alpha {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }

    /// The largest integer count `k` with P(X <= k) <= alpha (-1 when even 0 is likely).
    pub fn lower_quantile(&self, alpha: f64) -> f64 {
        if self.lower_tail(0.0) > alpha {
            return -1.0;
        }
        let mut lo = 0.0;
        let mut hi = self.mean.ceil().max(1.0);
        if self.lower_tail(hi) <= alpha {
            return hi;
        }
        // invariant: lower(lo) <= alpha < lower(hi)
        while hi - lo > 1.0 {
            let mid = ((lo + hi) / 2.0).floor();
            if self.lower_tail(mid) <= alpha {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn medians_and_mad() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0], 3.0), 1.0);
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut f = 1.0f64;
        for n in 1..20 {
            f *= n as f64;
            assert!(close(ln_gamma(n as f64 + 1.0), f.ln(), 1e-12), "{n}");
        }
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
    }

    /// P(X >= k) and P(X <= k) for k = 0..n, summed directly from a pmf, each from its small
    /// end (no cancellation).
    fn tails(ln_pmf: impl Fn(f64) -> f64, n: usize, top: usize) -> Vec<(f64, f64)> {
        let pmf: Vec<f64> = (0..=top).map(|k| ln_pmf(k as f64).exp()).collect();
        let mut upper = vec![0.0; top + 2];
        for k in (0..=top).rev() {
            upper[k] = upper[k + 1] + pmf[k];
        }
        let mut lower = 0.0;
        (0..n)
            .map(|k| {
                lower += pmf[k];
                (upper[k], lower)
            })
            .collect()
    }

    #[test]
    fn poisson_tails_match_sums() {
        for &mean in &[0.1f64, 1.0, 3.5, 20.0, 400.0] {
            let d = CountDist::new(mean, 0.0);
            let ln_pmf = |k: f64| -mean + k * mean.ln() - ln_gamma(k + 1.0);
            let n = (mean * 3.0) as usize + 10;
            for (k, (upper, lower)) in tails(ln_pmf, n, n * 2 + 100).into_iter().enumerate() {
                let k = k as f64;
                assert!(close(d.upper_tail(k), upper, 1e-7), "{mean} {k}");
                assert!(close(d.lower_tail(k), lower, 1e-7), "{mean} {k}");
            }
        }
    }

    #[test]
    fn negative_binomial_tails_match_sums() {
        for &(mean, phi) in &[(0.5f64, 0.5f64), (5.0, 0.2), (50.0, 0.05), (1000.0, 0.1)] {
            let d = CountDist::new(mean, phi);
            let r: f64 = 1.0 / phi;
            let p = r / (r + mean);
            // pmf(k) = C(k+r-1, k) p^r (1-p)^k
            let ln_pmf = |k: f64| {
                ln_gamma(k + r) - ln_gamma(r) - ln_gamma(k + 1.0) + r * p.ln() + k * (1.0 - p).ln()
            };
            let n = (mean * 4.0) as usize + 10;
            let top = (mean * 20.0) as usize + 500;
            for (k, (upper, lower)) in tails(ln_pmf, n, top).into_iter().enumerate().step_by(7) {
                let k = k as f64;
                assert!(
                    close(d.upper_tail(k), upper, 1e-7),
                    "{mean} {phi} {k}: {} vs {upper}",
                    d.upper_tail(k)
                );
                assert!(close(d.lower_tail(k), lower, 1e-7), "{mean} {phi} {k}");
            }
        }
    }

    #[test]
    fn far_tails_are_tiny_not_zero_or_negative() {
        let d = CountDist::new(2.0, 0.0);
        let t = d.upper_tail(40.0);
        assert!(t > 0.0 && t < 1e-25, "{t}");
        let d = CountDist::new(100.0, 0.1);
        let t = d.upper_tail(2000.0);
        assert!(t > 0.0 && t < 1e-9, "{t}");
    }

    #[test]
    fn quantiles_bracket_the_tail() {
        for &(mean, phi) in &[(0.2, 0.0), (3.0, 0.0), (60.0, 0.1), (5000.0, 0.04)] {
            let d = CountDist::new(mean, phi);
            for &alpha in &[1e-3, 1e-6] {
                let q = d.upper_quantile(alpha);
                assert!(d.upper_tail(q) <= alpha, "{mean} {phi} {alpha} {q}");
                assert!(d.upper_tail(q - 1.0) > alpha, "{mean} {phi} {alpha} {q}");
                let l = d.lower_quantile(alpha);
                if l >= 0.0 {
                    assert!(d.lower_tail(l) <= alpha);
                    assert!(d.lower_tail(l + 1.0) > alpha);
                }
            }
        }
    }
}
