//! Hostile XML. Each case is read in a child process (this test binary re-run on
//! `hostile::hostile_child`) so its peak memory (VmHWM) can be measured in isolation.

use super::*;

const DC: &str = "<EDI_DC40 SEGMENT=\"1\"><DOCNUM>1</DOCNUM><IDOCTYP>ORDERS05</IDOCTYP>\
<MESTYP>ORDERS</MESTYP><SNDPRN>EVIL</SNDPRN></EDI_DC40>";

struct ChildResult {
    rule: String,
    message: String,
    units: u64,
    hwm_kb: u64,
    stdout: String,
}

/// Reads `path` in a child process with `limits`; returns what it saw.
fn read_in_child(path: &Path, max_file_bytes: Option<u64>) -> ChildResult {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "hostile::hostile_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("IDOC_HOSTILE_FILE", path);
    if let Some(m) = max_file_bytes {
        cmd.env("IDOC_HOSTILE_MAX_FILE", m.to_string());
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness prints "test hostile_child ... " on the same line before our output.
    let line = stdout
        .lines()
        .find_map(|l| l.find("RESULT\t").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no RESULT in {stdout}"));
    let parts: Vec<&str> = line.split('\t').collect();
    eprintln!("{}: peak {} kB", path.display(), parts[3]);
    ChildResult {
        rule: parts[1].to_string(),
        units: parts[2].parse().unwrap(),
        hwm_kb: parts[3].parse().unwrap(),
        message: parts[4].to_string(),
        stdout,
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The child side: streams the file unit by unit (dropping each, like the pipeline does
/// once a unit is in the ledger), then prints rule, units, peak memory and message.
#[test]
fn hostile_child() {
    let Ok(path) = std::env::var("IDOC_HOSTILE_FILE") else {
        return; // only meaningful when spawned by read_in_child
    };
    let f = format();
    let mut ctx = ctx_for(Path::new(&path));
    if let Ok(m) = std::env::var("IDOC_HOSTILE_MAX_FILE") {
        ctx.limits.max_file_bytes = m.parse().unwrap();
    }
    let mut units = 0u64;
    let mut rule = String::from("none");
    let mut message = String::new();
    match f.open(Path::new(&path), &ctx) {
        Err(e) => {
            rule = e.reason.rule.clone();
            message = e.to_string();
        }
        Ok(mut r) => loop {
            match r.next_unit() {
                Ok(Some(mut u)) => {
                    let ev = u.evaluate();
                    assert!(!ev.is_rejected(), "{:?}", ev);
                    units += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    rule = e.reason.rule.clone();
                    message = e.to_string();
                    break;
                }
            }
        },
    }
    println!(
        "RESULT\t{rule}\t{units}\t{}\t{}",
        vm_hwm_kb(),
        message.replace(['\t', '\n'], " ")
    );
}

/// Peak memory allowed for a child reading a hostile file (the test harness itself uses a
/// few MB; every hostile file here is ≥ 50 MB or expands to gigabytes).
const HWM_LIMIT_KB: u64 = 40 * 1024;

fn assert_bounded(c: &ChildResult) {
    if cfg!(target_os = "linux") {
        assert!(c.hwm_kb > 0, "VmHWM not readable: {}", c.stdout);
    }
    assert!(c.hwm_kb < HWM_LIMIT_KB, "peak {} kB", c.hwm_kb);
}

fn write_file(dir: &Path, name: &str, parts: &mut dyn FnMut(&mut dyn Write)) -> PathBuf {
    let p = dir.join(name);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    parts(&mut w);
    w.flush().unwrap();
    p
}

#[test]
fn billion_laughs_is_refused_unexpanded() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "lol.xml", &mut |w| {
        writeln!(
            w,
            "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">"
        )
        .unwrap();
        for i in 1..10 {
            let prev = if i == 1 {
                "lol".to_string()
            } else {
                format!("lol{}", i - 1)
            };
            writeln!(
                w,
                " <!ENTITY lol{i} \"{}\">",
                format!("&{prev};").repeat(10)
            )
            .unwrap();
        }
        writeln!(
            w,
            "]>\n<ORDERS05><IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>&lol9;</BELNR></E1EDK01></IDOC></ORDERS05>"
        )
        .unwrap();
    });
    let c = read_in_child(&p, None);
    assert_eq!(c.rule, "xml-doctype", "{}", c.stdout);
    assert!(c.message.contains("line 2"), "{}", c.message);
    assert_bounded(&c);
}

#[test]
fn external_entity_never_leaks_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    let token = "TOP-SECRET-7f3a9c-do-not-leak";
    std::fs::write(&secret, token).unwrap();
    let with_dtd = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file://{}\">]>\n\
         <ORDERS05><IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>&xxe;</BELNR></E1EDK01>\
         </IDOC></ORDERS05>",
        secret.display()
    );
    // Without the DTD the reference is just undefined; also refused.
    let without_dtd = format!(
        "<ORDERS05><IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>&xxe;</BELNR></E1EDK01>\
         </IDOC></ORDERS05>"
    );
    for (text, rule) in [(with_dtd, "xml-doctype"), (without_dtd, "xml-entity")] {
        let p = dir.path().join("xxe.xml");
        std::fs::write(&p, &text).unwrap();
        let r: ReadResult = read_all(format().as_ref(), &p);
        let e = r.error.as_ref().expect("refused");
        assert_eq!(e.reason.rule, rule);
        let everything = format!("{r:?} {e}");
        assert!(!everything.contains(token), "secret leaked: {everything}");
        for a in &r.acks {
            assert!(!a.content.text_lossy().contains(token));
        }
    }
}

#[test]
fn ten_thousand_deep_nesting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "deep.xml", &mut |w| {
        write!(w, "<ORDERS05><IDOC BEGIN=\"1\">{DC}").unwrap();
        for _ in 0..10_000 {
            w.write_all(b"<E1EDK01 SEGMENT=\"1\">").unwrap();
        }
        for _ in 0..10_000 {
            w.write_all(b"</E1EDK01>").unwrap();
        }
        w.write_all(b"</IDOC></ORDERS05>").unwrap();
    });
    let c = read_in_child(&p, None);
    assert_eq!(c.rule, "xml-depth", "{}", c.stdout);
    assert!(c.message.contains("64"), "{}", c.message);
    assert_bounded(&c);
}

#[test]
fn fifty_megabyte_text_node_is_refused_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "big.xml", &mut |w| {
        write!(
            w,
            "<ORDERS05><IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>"
        )
        .unwrap();
        let chunk = vec![b'A'; 1 << 20];
        for _ in 0..50 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"</BELNR></E1EDK01></IDOC></ORDERS05>")
            .unwrap();
    });
    let c = read_in_child(&p, None);
    assert_eq!(c.rule, "xml-too-large", "{}", c.stdout);
    assert!(c.message.contains("max_record_bytes"), "{}", c.message);
    assert_bounded(&c);
}

#[test]
fn file_over_the_size_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let idoc =
        format!("<IDOC BEGIN=\"1\">{DC}<E1EDK01 SEGMENT=\"1\"><BELNR>1</BELNR></E1EDK01></IDOC>\n");
    let p = write_file(dir.path(), "huge.xml", &mut |w| {
        w.write_all(b"<ORDERS05>\n").unwrap();
        while_size(w, &idoc, 60 << 20);
        w.write_all(b"</ORDERS05>\n").unwrap();
    });
    let c = read_in_child(&p, Some(50 << 20));
    assert_eq!(c.rule, "file-too-large", "{}", c.stdout);
    assert!(c.message.contains("max_file_bytes"));
    assert_eq!(c.units, 0, "refused before reading");
}

/// Thousands of IDocs stream in flat memory: the same 60 MB file without the cap is read
/// unit by unit without holding the file.
#[test]
fn thousands_of_idocs_stream_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0u64;
    let p = write_file(dir.path(), "many.xml", &mut |w| {
        w.write_all(b"<ORDERS05>\n").unwrap();
        for i in 1..=20_000u64 {
            writeln!(
                w,
                "<IDOC BEGIN=\"1\"><EDI_DC40 SEGMENT=\"1\"><DOCNUM>{i}</DOCNUM><IDOCTYP>ORDERS05</IDOCTYP>\
                 <MESTYP>ORDERS</MESTYP><SNDPRN>BULK</SNDPRN></EDI_DC40>\
                 <E1EDK01 SEGMENT=\"1\"><BELNR>PO{i}</BELNR></E1EDK01>\
                 <E1EDP01 SEGMENT=\"1\"><POSEX>10</POSEX><MENGE>{i}</MENGE><KTEXT>{}</KTEXT></E1EDP01></IDOC>",
                "padding ".repeat(300)
            )
            .unwrap();
            n += 1;
        }
        w.write_all(b"</ORDERS05>\n").unwrap();
    });
    let size = std::fs::metadata(&p).unwrap().len();
    assert!(size > 45 << 20, "{size}");
    let c = read_in_child(&p, None);
    assert_eq!(c.rule, "none", "{}", c.stdout);
    assert_eq!(c.units, n);
    assert_bounded(&c);
}

fn while_size(w: &mut dyn Write, unit: &str, total: u64) {
    let mut written = 0u64;
    while written < total {
        w.write_all(unit.as_bytes()).unwrap();
        written += unit.len() as u64;
    }
}

/// `limits` passed by value still reach the reader (guards `read_all_with`'s contract).
#[test]
fn limits_from_the_context_are_honoured() {
    let p = root().join("tests/corpus/idoc/sap_o2c_INVOIC02.xml");
    let mut ctx = ctx_for(&p);
    ctx.limits = Limits {
        max_file_bytes: 100,
        ..Limits::default()
    };
    let r = read_all_with(format().as_ref(), &p, &ctx);
    assert_eq!(r.error.unwrap().reason.rule, "file-too-large");
}
