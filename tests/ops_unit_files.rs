//! The shipped systemd unit and Prometheus rules pass their checkers, run through the same
//! scripts CI and operators use. Needs `systemd-analyze` and `promtool` on PATH (Debian
//! packages `systemd` and `prometheus`); set OMNIROUTE_SKIP_TOOL_TESTS=1 to skip on machines
//! without them.

use std::path::Path;
use std::process::Command;

fn skip(tool: &str) -> bool {
    if std::env::var_os("OMNIROUTE_SKIP_TOOL_TESTS").is_some() {
        eprintln!("OMNIROUTE_SKIP_TOOL_TESTS set: not running the {tool} checks");
        return true;
    }
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is not installed (apt-get install systemd prometheus), \
         or set OMNIROUTE_SKIP_TOOL_TESTS=1"
    );
    false
}

fn run(script: &str, envs: &[(&str, &str)]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join(script))
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn systemd_unit_verifies_and_rates_at_most_2_0() {
    if skip("systemd-analyze") {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_omniroute");
    let (ok, out) = run("scripts/check-systemd.sh", &[("OMNIROUTE_BIN", bin)]);
    assert!(ok, "{out}");
    assert!(out.contains("verify: clean"), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level for omniroute.service"))
        .unwrap_or_else(|| panic!("no summary line in {out}"));
    let exposure: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"));
    assert!(exposure <= 2.0, "{line}");
}

#[test]
fn check_systemd_script_rejects_a_weakened_unit() {
    if skip("systemd-analyze") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("systemd/omniroute.service")).unwrap();
    // Tried as an operator who strips the sandboxing would: the check must catch it.
    let weakened: String = shipped
        .lines()
        .filter(|l| {
            ![
                "ProtectSystem=",
                "PrivateUsers=",
                "SystemCallFilter=",
                "CapabilityBoundingSet=",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("omniroute.service");
    std::fs::write(&unit, weakened).unwrap();
    let bin = env!("CARGO_BIN_EXE_omniroute");
    let unit_arg = unit.to_str().unwrap();
    let (ok, out) = run(
        "scripts/check-systemd.sh",
        &[("OMNIROUTE_BIN", bin), ("OMNIROUTE_UNIT", unit_arg)],
    );
    assert!(!ok, "weakened unit passed: {out}");
    assert!(out.contains("is above 2.0"), "{out}");

    // A misspelt key is only a warning to systemd; the check treats it as a failure.
    let typo = shipped.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHom=yes");
    std::fs::write(&unit, typo).unwrap();
    let (ok, out) = run(
        "scripts/check-systemd.sh",
        &[("OMNIROUTE_BIN", bin), ("OMNIROUTE_UNIT", unit_arg)],
    );
    assert!(!ok, "unit with an unknown key passed: {out}");
    assert!(out.contains("ProtectHom"), "{out}");
}

#[test]
fn prometheus_rules_config_and_rule_tests_pass() {
    if skip("promtool") {
        return;
    }
    let (ok, out) = run("scripts/check-prometheus.sh", &[]);
    assert!(ok, "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    assert!(out.contains(" rules found"), "{out}");
    assert!(out.contains("valid prometheus config file syntax"), "{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");
}
