//! Erlang C: the M/M/N queue of contact-center staffing (Poisson arrivals, exponential handle
//! times, N agents, nobody abandons).
//!
//! Used as a quick staffing estimate next to the simulator, and to validate the simulator (and so
//! the engine) against theory. Erlang B is computed with the usual recurrence
//! `B(n) = A·B(n−1) / (n + A·B(n−1))`, which never forms `Aⁿ/n!` and so stays stable for
//! thousands of agents; Erlang C follows from it.

/// Offered traffic and handle time of one queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Arrivals per second.
    pub rate: f64,
    /// Mean handle time, seconds.
    pub aht: f64,
}

impl Load {
    pub fn new(rate_per_second: f64, aht_seconds: f64) -> Self {
        Load {
            rate: rate_per_second,
            aht: aht_seconds,
        }
    }

    /// Offered traffic in Erlangs (`A = λ·AHT`).
    pub fn erlangs(&self) -> f64 {
        self.rate * self.aht
    }

    /// Agent occupancy with `agents` agents (`A / N`).
    pub fn occupancy(&self, agents: u32) -> f64 {
        self.erlangs() / f64::from(agents.max(1))
    }

    /// Probability that a contact waits at all (Erlang C). 1 when the queue is unstable (N ≤ A).
    pub fn prob_wait(&self, agents: u32) -> f64 {
        erlang_c(agents, self.erlangs())
    }

    /// Share of contacts answered within `t` seconds: `1 − C·e^(−(N−A)·t/AHT)`.
    pub fn service_level(&self, agents: u32, t: f64) -> f64 {
        let a = self.erlangs();
        let n = f64::from(agents);
        if n <= a {
            return 0.0;
        }
        1.0 - erlang_c(agents, a) * (-(n - a) * t / self.aht).exp()
    }

    /// Average speed of answer, seconds: `C·AHT / (N − A)`. Infinite when N ≤ A.
    pub fn asa(&self, agents: u32) -> f64 {
        let a = self.erlangs();
        let n = f64::from(agents);
        if n <= a {
            return f64::INFINITY;
        }
        erlang_c(agents, a) * self.aht / (n - a)
    }

    /// The fewest agents answering at least `target` (0–1) within `t` seconds, searching up to
    /// `max_agents`; `None` when no staffing up to that meets it.
    pub fn agents_for(&self, t: f64, target: f64, max_agents: u32) -> Option<u32> {
        let start = (self.erlangs().floor() as u32).saturating_add(1);
        (start.max(1)..=max_agents).find(|&n| self.service_level(n, t) >= target)
    }
}

/// Erlang B blocking probability for `agents` servers and `traffic` Erlangs.
pub fn erlang_b(agents: u32, traffic: f64) -> f64 {
    if traffic.is_nan() || traffic <= 0.0 {
        return 0.0;
    }
    let mut b = 1.0;
    for n in 1..=agents {
        let ab = traffic * b;
        b = ab / (f64::from(n) + ab);
    }
    b
}

/// Erlang C probability of waiting for `agents` servers and `traffic` Erlangs.
pub fn erlang_c(agents: u32, traffic: f64) -> f64 {
    if traffic.is_nan() || traffic <= 0.0 {
        return 0.0;
    }
    let n = f64::from(agents);
    if n <= traffic {
        return 1.0;
    }
    let b = erlang_b(agents, traffic);
    n * b / (n - traffic * (1.0 - b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_example() {
        // 100 calls per 30 min, AHT 180 s: A = 10 Erlangs. Classic tables give, for 13 agents,
        // P(wait) ≈ 0.2853, SL(20 s) ≈ 0.7956 and ASA ≈ 17.1 s.
        let load = Load::new(100.0 / 1800.0, 180.0);
        assert!((load.erlangs() - 10.0).abs() < 1e-12);
        assert!(
            (load.prob_wait(13) - 0.2853).abs() < 5e-4,
            "{}",
            load.prob_wait(13)
        );
        assert!((load.service_level(13, 20.0) - 0.7956).abs() < 5e-4);
        assert!((load.asa(13) - 17.12).abs() < 0.05, "{}", load.asa(13));
        // 80/20 needs 14 agents at this load.
        assert_eq!(load.agents_for(20.0, 0.8, 100), Some(14));
    }

    #[test]
    fn erlang_b_matches_direct_formula_for_small_n() {
        // B(3, 2) = (8/6) / (1 + 2 + 2 + 8/6) = 4/19.
        assert!((erlang_b(3, 2.0) - 4.0 / 19.0).abs() < 1e-12);
        assert_eq!(erlang_b(0, 2.0), 1.0);
    }

    #[test]
    fn stable_for_hundreds_of_agents() {
        // 950 Erlangs on 1000 agents: A^N/N! overflows f64 by far; the recurrence does not.
        let c = erlang_c(1000, 950.0);
        assert!(c.is_finite() && c > 0.0 && c < 1.0, "{c}");
        let load = Load::new(950.0 / 300.0, 300.0);
        let sl = load.service_level(1000, 20.0);
        assert!(sl.is_finite() && sl > 0.0 && sl < 1.0);
        // More agents never make the service worse.
        assert!(load.service_level(1010, 20.0) > sl);
        assert!(load.asa(1010) < load.asa(1000));
    }

    #[test]
    fn unstable_and_degenerate_queues() {
        let load = Load::new(1.0, 10.0); // 10 Erlangs
        assert_eq!(load.prob_wait(10), 1.0);
        assert_eq!(load.service_level(9, 20.0), 0.0);
        assert!(load.asa(10).is_infinite());
        assert_eq!(erlang_c(5, 0.0), 0.0);
        assert_eq!(load.agents_for(20.0, 0.99, 10), None);
    }
}
