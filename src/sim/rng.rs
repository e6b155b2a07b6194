//! A small seeded random source and the samplers the simulator needs.
//!
//! Written here rather than taken from a crate so that a seed gives the same run on every
//! platform and every dependency upgrade: xoshiro256++ seeded through SplitMix64, exponential by
//! inversion, normal by Box–Muller.

/// xoshiro256++ (Blackman and Vigna): fast, 256-bit state, good statistical quality.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for `seed`; `stream` selects an independent sequence for the same seed.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut x = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut next = || {
            // SplitMix64: spreads any seed (even 0) over the whole state.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1]: never 0, so `ln` is always finite.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }

    /// Standard normal (Box–Muller; the second value is dropped to keep the state simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Lognormal with the given mean and standard deviation (of the value, not of its log).
    pub fn lognormal(&mut self, mean: f64, sd: f64) -> f64 {
        let sigma2 = (1.0 + (sd * sd) / (mean * mean)).ln();
        let mu = mean.ln() - sigma2 / 2.0;
        (mu + sigma2.sqrt() * self.normal()).exp()
    }

    /// An index drawn with the given (positive) weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x <= *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_sd(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, v.sqrt())
    }

    #[test]
    fn same_seed_same_sequence_streams_differ() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 0);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 0);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn samplers_have_the_requested_moments() {
        let mut r = Rng::new(1, 0);
        let e: Vec<f64> = (0..200_000).map(|_| r.exponential(300.0)).collect();
        let (m, sd) = mean_sd(&e);
        assert!((m - 300.0).abs() < 3.0, "{m}");
        assert!((sd - 300.0).abs() < 5.0, "{sd}");
        let l: Vec<f64> = (0..200_000).map(|_| r.lognormal(240.0, 120.0)).collect();
        let (m, sd) = mean_sd(&l);
        assert!((m - 240.0).abs() < 2.0, "{m}");
        assert!((sd - 120.0).abs() < 3.0, "{sd}");
        let u: Vec<f64> = (0..100_000).map(|_| r.unit()).collect();
        assert!(u.iter().all(|x| *x > 0.0 && *x <= 1.0));
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[r.weighted(&[1.0, 2.0, 7.0])] += 1;
        }
        assert!(
            (counts[2] as f64 / 30_000.0 - 0.7).abs() < 0.01,
            "{counts:?}"
        );
    }
}
