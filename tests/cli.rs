//! The `omniroute` binary as an operator uses it: version, check-config, secrets never shown.

use std::process::{Command, Output};

fn omniroute(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_omniroute"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run omniroute")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_names_the_program() {
    let out = omniroute(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("omniroute {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_prints_the_effective_example_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/omniroute.toml");
    let out = omniroute(&["check-config", path], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("[routing.queues.sales]"), "{shown}");
    // Defaults are filled in: built-in channels not written in the file appear too.
    assert!(shown.contains("[routing.channels.webform]"), "{shown}");
}

#[test]
fn check_config_never_shows_a_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "from-file-s3cret\n").expect("write secret");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[kafka]
brokers = ["kafka-1:9093"]
[kafka.security]
protocol = "sasl_ssl"
sasl_mechanism = "SCRAM-SHA-256"
username = "omniroute"
password = {{ file = "{}" }}
cert_file = "/etc/omniroute/client.pem"
key_file = "/etc/omniroute/client.key"
key_password = {{ env = "OMNIROUTE_TEST_KEY_PASSWORD" }}
[kafka.client]
"sasl.oauthbearer.client.secret" = "client-s3cret"
"#,
            pw_file.display()
        ),
    )
    .expect("write config");
    let out = omniroute(
        &["check-config", &cfg.display().to_string()],
        &[("OMNIROUTE_TEST_KEY_PASSWORD", "from-env-s3cret")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains("s3cret"), "{all}");
    assert!(all.contains("password = \"<redacted>\""), "{all}");
    assert!(all.contains("key_password = \"<redacted>\""), "{all}");

    // A secret written in the wrong form is an error that does not repeat it.
    std::fs::write(
        &cfg,
        "[kafka]\nbrokers = [\"k:9093\"]\n[kafka.security]\nprotocol = \"sasl_ssl\"\n\
         sasl_mechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"inline-s3cret\"\n",
    )
    .expect("write config");
    let out = omniroute(&["check-config", &cfg.display().to_string()], &[]);
    assert!(!out.status.success());
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains("s3cret"), "{all}");
    assert!(all.contains("c.toml:7:"), "{all}");
}

#[test]
fn check_config_rejects_bad_values_with_the_key_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[kafka]\nbrokers = [\"k:9092\"]\n[routing.queues.sales]\n\
         [[routing.queues.sales.relaxation]]\nafter = \"1m\"\noverflow_to = \"nowhere\"\n",
    )
    .expect("write config");
    let out = omniroute(&["check-config", &cfg.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("routing.queues.sales.relaxation[0].overflow_to"),
        "{err}"
    );

    std::fs::write(&cfg, "[kafka]\nbrokers = [\"k:9092\"]\nbrokerz = 1\n").expect("write");
    let out = omniroute(&["check-config", &cfg.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.toml:3:1") && err.contains("brokerz"),
        "{err}"
    );
}
