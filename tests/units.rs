//! The service files we ship in `dist/`: the systemd units pass `systemd-analyze verify`
//! against the real binary, and the cron line is one cron will accept.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 3] = [
    "tallyman.service",
    "tallyman.timer",
    "tallyman-watch.service",
];

fn dist(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(dist(rel)).unwrap_or_else(|e| panic!("dist/{rel}: {e}"))
}

/// `verify` checks that `ExecStart=` names an existing executable, so the units point at the
/// binary under test instead of /usr/local/bin.
fn with_test_binary(unit: &str) -> String {
    let installed = "ExecStart=/usr/local/bin/tallyman ";
    let tested = format!("ExecStart={} ", common::bin().display());
    unit.replace(installed, &tested)
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let tmp = tempfile::tempdir().unwrap();
    for name in UNITS {
        let text = with_test_binary(&read(&format!("systemd/{name}")));
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(UNITS)
        .current_dir(tmp.path())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("note: systemd-analyze is not installed; the units were not verified");
            return;
        }
        Err(e) => panic!("systemd-analyze: {e}"),
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 on unknown keys and unparsable values; it only says so. Lines about the
    // host's own units (a container's odd set-up) are not ours to fix.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("tallyman")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify:\n{said}");
    assert!(out.status.success(), "systemd-analyze verify:\n{said}");
    if !said.trim().is_empty() {
        println!("note: systemd-analyze said about other units:\n{said}");
    }
}

/// The value of every `key=` line of a unit, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn units_run_the_commands_they_claim_and_treat_review_and_interrupt_as_success() {
    let oneshot = read("systemd/tallyman.service");
    assert_eq!(
        values(&oneshot, "ExecStart"),
        ["/usr/local/bin/tallyman run"]
    );
    assert_eq!(values(&oneshot, "Type"), ["oneshot"]);
    assert_eq!(values(&oneshot, "SuccessExitStatus"), ["1 3"]);
    let watch = read("systemd/tallyman-watch.service");
    assert_eq!(
        values(&watch, "ExecStart"),
        ["/usr/local/bin/tallyman watch"]
    );
    assert_eq!(values(&watch, "Restart"), ["on-failure"]);
    assert_eq!(values(&watch, "SuccessExitStatus"), ["3"]);
    for unit in [&oneshot, &watch] {
        for (key, want) in [
            ("User", "tallyman"),
            ("UMask", "0027"),
            ("ProtectSystem", "strict"),
            ("ReadWritePaths", "/srv/edi"),
            ("Environment", "TALLYMAN_CONFIG=/srv/edi/tallyman.toml"),
            ("EnvironmentFile", "-/etc/tallyman/env"),
        ] {
            assert!(values(unit, key).contains(&want), "{key}={want} missing");
        }
    }
    let timer = read("systemd/tallyman.timer");
    assert_eq!(values(&timer, "OnBootSec").len(), 1);
    assert_eq!(values(&timer, "OnUnitActiveSec").len(), 1);
}

#[test]
fn the_commands_in_the_units_parse_with_the_real_binary() {
    for (unit, sub) in [
        ("systemd/tallyman.service", "run"),
        ("systemd/tallyman-watch.service", "watch"),
    ] {
        let line = values(&read(unit), "ExecStart")[0].to_string();
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(args, [sub]);
        let out = Command::new(common::bin())
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::text(&out));
    }
}

/// Checks one cron time field: `*`, `N`, `N-M`, lists of those, each with an optional `/S`.
fn cron_field_ok(field: &str, lo: u32, hi: u32, names: &[&str]) -> bool {
    let value = |s: &str| -> Option<u32> {
        if let Ok(n) = s.parse::<u32>() {
            return (lo..=hi).contains(&n).then_some(n);
        }
        let i = names.iter().position(|n| n.eq_ignore_ascii_case(s))?;
        Some(lo + i as u32)
    };
    field.split(',').all(|item| {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step_ok = step.is_none_or(|s| s.parse::<u32>().is_ok_and(|n| n > 0));
        let range_ok = range == "*"
            || match range.split_once('-') {
                Some((a, b)) => matches!((value(a), value(b)), (Some(a), Some(b)) if a <= b),
                None => value(range).is_some(),
            };
        step_ok && range_ok && !item.is_empty()
    })
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The job lines of a cron.d file: environment assignments and comments left out.
fn cron_jobs(text: &str) -> Vec<&str> {
    let assignment = |l: &str| {
        l.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !assignment(l))
        .collect()
}

fn check_cron_job(job: &str) -> Result<(), String> {
    let parts: Vec<&str> = job.split_whitespace().collect();
    if parts.len() < 7 {
        return Err(format!("want 5 time fields, a user and a command: {job}"));
    }
    let limits: [(u32, u32, &[&str]); 5] = [
        (0, 59, &[]),
        (0, 23, &[]),
        (1, 31, &[]),
        (1, 12, &MONTHS),
        (0, 7, &DAYS),
    ];
    for (field, (lo, hi, names)) in parts.iter().zip(limits) {
        if !cron_field_ok(field, lo, hi, names) {
            return Err(format!("bad time field '{field}' in: {job}"));
        }
    }
    if parts[5] != "tallyman" {
        return Err(format!("the job must run as user tallyman: {job}"));
    }
    // cron turns an unescaped % into a newline and feeds the rest to stdin.
    if job.contains('%') {
        return Err(format!("unescaped % in: {job}"));
    }
    Ok(())
}

#[test]
fn cron_file_has_one_valid_job_that_cannot_pile_up() {
    let text = read("cron/tallyman");
    // cron silently drops a last line without a newline.
    assert!(
        text.ends_with('\n'),
        "dist/cron/tallyman must end with a newline"
    );
    let jobs = cron_jobs(&text);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    check_cron_job(jobs[0]).unwrap();
    assert!(jobs[0].contains("flock -n "), "{}", jobs[0]);
    assert!(jobs[0].contains(" tallyman run"), "{}", jobs[0]);
    assert!(text.contains("\nTALLYMAN_CONFIG=/srv/edi/tallyman.toml\n"));
}

#[test]
fn the_cron_checker_catches_broken_lines() {
    let ok = "*/5 * * * * tallyman tallyman run";
    assert_eq!(check_cron_job(ok), Ok(()));
    assert_eq!(
        check_cron_job("0 2 1-15 jan-mar mon,fri tallyman x"),
        Ok(())
    );
    for bad in [
        "*/5 * * * tallyman tallyman run",  // four time fields
        "*/5 * * * * tallyman",             // no command
        "60 * * * * tallyman tallyman run", // minute out of range
        "*/0 * * * * tallyman tallyman run",
        "5-1 * * * * tallyman tallyman run",
        "* * * 13 * tallyman tallyman run",
        "* * * * * root tallyman run",
        "* * * * * tallyman date +%F",
    ] {
        assert!(check_cron_job(bad).is_err(), "accepted: {bad}");
    }
}
