//! Where the CPU went during a measurement: this process, and the rest of the machine (the
//! broker, mostly), from Linux's `/proc` counters. A rate on a shared machine says little on its
//! own; CPU time per record says what each contender costs, and with the core count, the most
//! the machine could give it.

/// Linux reports these counters in USER_HZ, which is 100 on every architecture's user ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU counters at one moment, in ticks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// User + system time of this process (all its threads, librdkafka's included).
    process: u64,
    /// Busy time of all cores (everything but idle and I/O wait).
    machine: u64,
}

/// CPU seconds between two samples.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spent {
    pub process: f64,
    /// Other processes: the machine's busy time minus this process's.
    pub rest: f64,
}

impl Sample {
    /// Now; `None` where `/proc` cannot be read (not Linux).
    pub(super) fn now() -> Option<Sample> {
        Some(Sample {
            process: process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?,
            machine: machine_busy_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?,
        })
    }

    /// CPU seconds spent from `self` to `later`.
    pub(super) fn until(&self, later: &Sample) -> Spent {
        let process = later.process.saturating_sub(self.process);
        let machine = later.machine.saturating_sub(self.machine);
        Spent {
            process: process as f64 / TICKS_PER_SECOND,
            rest: machine.saturating_sub(process) as f64 / TICKS_PER_SECOND,
        }
    }
}

impl Spent {
    /// "x µs per record here, y µs elsewhere", and the rate at which `cores` would be full.
    pub(super) fn describe(&self, records: u64, cores: usize) -> String {
        let n = records.max(1) as f64;
        let (own, rest) = (self.process * 1e6 / n, self.rest * 1e6 / n);
        format!(
            "CPU per record: {own:.2} µs in this process, {rest:.2} µs in the rest of the machine; \
             {cores} cores are full at {:.0} records/s",
            cores as f64 * 1e6 / (own + rest).max(1e-9)
        )
    }
}

/// utime + stime of `/proc/self/stat`: fields 14 and 15, counted after the command name, which
/// is in parentheses and may itself hold spaces.
fn process_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The first line of `/proc/stat` (`cpu user nice system idle iowait irq softirq steal …`),
/// less idle and iowait.
fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = v.iter().take(8).sum();
    Some(total - v.get(3)? - v.get(4)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_counters() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 2000 0 0 0 731 52 0 0 20 0";
        assert_eq!(process_ticks(stat), Some(783));
        let machine = "cpu  100 5 40 900 7 3 2 1 0 0\ncpu0 50 2 20 450 3 1 1 0 0 0\n";
        assert_eq!(machine_busy_ticks(machine), Some(100 + 5 + 40 + 3 + 2 + 1));
        assert_eq!(machine_busy_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn splits_the_machine_between_this_process_and_the_rest() {
        let a = Sample {
            process: 1_000,
            machine: 5_000,
        };
        let b = Sample {
            process: 1_150,
            machine: 5_250,
        };
        let spent = a.until(&b);
        assert_eq!((spent.process, spent.rest), (1.5, 1.0));
        // 1.5 s + 1.0 s for 500,000 records: 3 + 2 µs a record; 2 cores are full at 400,000/s.
        let text = spent.describe(500_000, 2);
        assert!(text.contains("3.00 µs in this process"), "{text}");
        assert!(text.contains("2.00 µs in the rest"), "{text}");
        assert!(text.contains("full at 400000 records/s"), "{text}");
    }
}
