//! Log lines as journald, Loki or a log file receive them: the real binary with stderr
//! piped, never a terminal.

mod common;

use common::*;

/// A working directory with one small CSV in the inbox, run with `TALLYMAN_LOG=info` so
/// the engine logs at least one line per file; returns the run's stderr.
fn stderr_of_a_run(extra_args: &[&str], env: &[(&str, &str)]) -> String {
    let w = Work::new(100);
    w.drop_file("orders.csv", &orders_csv(3, 2, "LOG"));
    let mut cmd = w.cmd();
    cmd.args(extra_args).arg("run").env("TALLYMAN_LOG", "info");
    cmd.env_remove("NO_COLOR")
        .env_remove("TALLYMAN_LOG_FORMAT")
        .env_remove("JOURNAL_STREAM");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("file finished"),
        "the run logged nothing: {err}"
    );
    err
}

#[test]
fn regression_ansi_colour_codes_written_to_a_pipe() {
    let err = stderr_of_a_run(&[], &[]);
    assert!(
        !err.contains("\x1b["),
        "colour codes in piped stderr: {err:?}"
    );
    assert!(err.contains(" INFO "), "text lines keep their level: {err}");
}

#[test]
fn json_format_gives_one_object_per_line_with_the_fields() {
    for (args, env) in [
        (vec!["--log-format", "json"], vec![]),
        (vec![], vec![("TALLYMAN_LOG_FORMAT", "json")]),
    ] {
        let err = stderr_of_a_run(&args, &env);
        let mut finished = 0;
        for line in err.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            for key in ["timestamp", "level", "target", "message"] {
                assert!(v.get(key).is_some(), "no '{key}' in {line}");
            }
            if v["message"] == "file finished" {
                assert_eq!(v["file"], "orders.csv", "{line}");
                assert_eq!(v["level"], "INFO", "{line}");
                finished += 1;
            }
        }
        assert_eq!(finished, 1, "{err}");
    }
}

#[test]
fn an_unknown_log_format_is_refused_before_anything_runs() {
    let w = Work::new(100);
    let out = w.run(&["--log-format", "xml", "run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
}

/// Under systemd, stderr is the journal stream named by `JOURNAL_STREAM`; a file whose
/// device and inode we put there stands in for it.
#[cfg(unix)]
#[test]
fn journald_gets_priorities_and_no_timestamp_of_ours() {
    use std::os::unix::fs::MetadataExt;
    let w = Work::new(100);
    w.drop_file("orders.csv", &orders_csv(3, 0, "JRN"));
    let log = w.dir.join("journal.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let status = w
        .cmd()
        .arg("run")
        .env("TALLYMAN_LOG", "info")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("TALLYMAN_LOG_FORMAT")
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let err = std::fs::read_to_string(&log).unwrap();
    let finished = err.lines().find(|l| l.contains("file finished"));
    let finished = finished.unwrap_or_else(|| panic!("{err}"));
    assert!(
        finished.starts_with("<6> INFO tallyman::engine: file finished"),
        "{finished}"
    );
    assert!(!err.contains("\x1b["), "{err:?}");
}
