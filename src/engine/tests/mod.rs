//! Engine behaviour with a tiny in-test format: each line `sku,qty` is one unit mapped
//! to a product; a line `#...` is skipped; a bad qty rejects the line.
use super::claim::fingerprint_prefix;
use super::*;
use crate::canonical::{Entity, Record};
use crate::format::{
    AckContext, FileError, Format, OpenContext, Outbound, Policy, Probe, UnitOutcomes, UnitReader,
    UnitStatus,
};
use crate::report;
use crate::unit::{Evaluation, LineVerdict, Position, Reason, SourceLine, Unit};
use std::io::BufRead;
use std::sync::Arc;

struct Lines {
    policy: Policy,
}

struct LinesReader {
    path: std::path::PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    seq: u64,
    byte: u64,
    line: u64,
    fail_at: Option<u64>,
}

impl Format for Lines {
    fn name(&self) -> &str {
        "lines"
    }
    fn kind(&self) -> &str {
        "test"
    }
    fn sniff(&self, probe: &Probe) -> Option<u32> {
        probe.name.ends_with(".txt").then_some(1)
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn open<'a>(
        &'a self,
        path: &Path,
        _ctx: &OpenContext,
    ) -> std::result::Result<Box<dyn UnitReader + 'a>, FileError> {
        let f = std::fs::File::open(path).map_err(|e| FileError::io(&e))?;
        let fail_at = path.to_string_lossy().contains("truncated").then_some(2);
        Ok(Box::new(LinesReader {
            path: path.to_path_buf(),
            lines: std::io::BufReader::new(f).lines(),
            seq: 0,
            byte: 0,
            line: 0,
            fail_at,
        }))
    }
}

impl UnitReader for LinesReader {
    fn next_unit(&mut self) -> std::result::Result<Option<Unit>, FileError> {
        let Some(l) = self.lines.next() else {
            return Ok(None);
        };
        let l = l.map_err(|e| FileError::io(&e))?;
        self.line += 1;
        if Some(self.line) == self.fail_at {
            return Err(FileError::at(
                Position::new(self.line, self.byte, self.line),
                "truncated",
                "file ends early",
            ));
        }
        let pos = Position::new(self.line, self.byte, self.line);
        self.byte += l.len() as u64 + 1;
        let seq = self.seq;
        self.seq += 1;
        let line = SourceLine {
            pos,
            raw: l.clone(),
        };
        if l.starts_with('#') {
            return Ok(Some(Unit::skipped(seq, "comment", vec![line])));
        }
        let path = self.path.clone();
        let job = move |_: &str| {
            if let Some(special) = special_line(&l, &path) {
                return special;
            }
            if l.starts_with("CRASH") && recovery::CRASHES.lock().unwrap().remove(&l) {
                panic!("simulated crash");
            }
            if l == "POISON" {
                panic!("simulated reader that always dies on this line");
            }
            let (sku, qty) = l.split_once(',').unwrap_or((&l, ""));
            match qty.parse::<rust_decimal::Decimal>() {
                Ok(q) => Evaluation {
                    records: vec![Record::build(
                        Entity::Product,
                        sku,
                        serde_json::json!({"sku": sku, "min_order_qty": q.to_string()}),
                    )
                    .unwrap()],
                    ..Default::default()
                },
                Err(_) => Evaluation {
                    verdicts: vec![LineVerdict::rejected(
                        Reason::new("type", "qty is not a decimal")
                            .field("qty")
                            .value(qty),
                    )],
                    key: Some(sku.to_string()),
                    ..Default::default()
                },
            }
        };
        Ok(Some(Unit {
            seq,
            label: format!("line {}", self.line),
            lines: vec![line],
            job: Some(Box::new(job)),
            show: None,
        }))
    }

    fn finish(
        &mut self,
        outcomes: &dyn UnitOutcomes,
        acks: &mut dyn AckContext,
        _error: Option<&FileError>,
    ) -> std::result::Result<Vec<Outbound>, FileError> {
        let applied = (0..self.seq)
            .filter(|s| {
                outcomes
                    .get(*s)
                    .is_some_and(|o| o.status == UnitStatus::Applied)
            })
            .count();
        let n = acks.next_control_number("P", "ACK")?;
        Ok(vec![Outbound {
            file_name: format!("ack-{n}.txt"),
            kind: "ACK".into(),
            partner: "P".into(),
            control_no: Some(n),
            content: crate::format::AckBody::from_text(format!("applied={applied}").as_bytes()),
        }])
    }
}

static STOP: std::sync::Mutex<Option<Arc<std::sync::atomic::AtomicBool>>> =
    std::sync::Mutex::new(None);

/// Lines that make the job do something a test needs: `GROW` appends to the file being
/// read (a writer that was not done), `STOP` asks the engine to stop (a SIGTERM), `U<key>`
/// is a unit no definition maps, `H<key>` one whose partner wants a person to look first.
fn special_line(l: &str, path: &Path) -> Option<Evaluation> {
    use std::io::Write;
    match l {
        "GROW" => {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(b"LATE,1\n").unwrap();
            Some(Evaluation::default())
        }
        "STOP" => {
            if let Some(flag) = STOP.lock().unwrap().as_ref() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Some(Evaluation::default())
        }
        _ if l.starts_with('O') => {
            let (no, qty) = l[1..].split_once(',').unwrap_or((&l[1..], "1"));
            let body =
                serde_json::json!({"order_no": no, "lines": [{"line_no": "1", "quantity": qty}]});
            Some(Evaluation {
                records: vec![Record::build(Entity::Order, no, body).unwrap()],
                ..Evaluation::default()
            })
        }
        _ if l.starts_with('U') || l.starts_with('H') => Some(Evaluation {
            unmapped: true,
            key: Some(l[1..].to_string()),
            claims: vec![format!("test:{l}")],
            hold: l
                .starts_with('H')
                .then(|| "partner P holds unmapped documents for review".to_string()),
            ..Evaluation::default()
        }),
        _ => None,
    }
}

fn engine(dir: &Path, policy: Policy, batch_lines: u64) -> Engine {
    let cfg_path = dir.join("tallyman.toml");
    let text = crate::config::DEFAULT_CONFIG
        .replace("settle_seconds = 10", "settle_seconds = 0")
        .replace(
            "batch_lines = 10000",
            &format!("batch_lines = {batch_lines}"),
        );
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = Config::load(&cfg_path).unwrap();
    workdir::create(&cfg.paths).unwrap();
    let formats = FormatSet {
        formats: vec![Arc::new(Lines { policy })],
    };
    Engine::with_formats(cfg, formats).unwrap()
}

fn outbox_lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let pdir = dir.join("outbox/product");
    let mut names: Vec<_> = std::fs::read_dir(&pdir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for n in names {
        out.extend(
            std::fs::read_to_string(n)
                .unwrap()
                .lines()
                .map(String::from),
        );
    }
    out
}

const ACCEPT: Policy = Policy::AcceptValid {
    max_reject_ratio: 0.5,
};

fn run_once(e: &mut Engine) -> Pass {
    let run = e.ledger.begin_run("t").unwrap();
    e.run_pass(run).unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

mod outcomes;
mod recovery;
mod repeats;
