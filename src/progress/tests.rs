//! The progress tests are almost as long as the code they test (a fake clock, a log
//! capture and a dozen timing cases), so they live in their own file and `progress`
//! reads as the code alone.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A clock moved by the test, counting how often it is read.
#[derive(Clone, Default)]
struct FakeClock {
    millis: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
}

impl FakeClock {
    fn advance(&self, d: Duration) {
        self.millis
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
    fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

fn progress(total: u64, mode: Mode) -> (Progress, FakeClock) {
    let clock = FakeClock::default();
    let p = Progress::with(
        "big.csv",
        total,
        mode,
        Policy::default(),
        Box::new(clock.clone()),
    );
    (p, clock)
}

const HIDDEN: Mode = Mode::Bar(ProgressDrawTarget::hidden);

/// Collects the log lines written on this thread while `f` runs.
fn logged(f: impl FnOnce()) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn the_clock_is_read_once_per_64_small_units() {
    let (mut p, clock) = progress(1 << 30, Mode::Log);
    let at_start = clock.reads();
    for i in 1..=6400 {
        p.update(i * 100, i);
    }
    assert_eq!(clock.reads() - at_start, 100);
}

#[test]
fn huge_units_read_the_clock_every_few_thousand_lines() {
    let (mut p, clock) = progress(1 << 30, Mode::Log);
    let at_start = clock.reads();
    for i in 1..=10 {
        p.update(i * 1_000_000, i * 5000);
    }
    assert_eq!(clock.reads() - at_start, 10);
}

#[test]
fn a_log_line_every_ten_seconds_and_none_before() {
    // Every call checks the clock, so the figures are exact.
    let policy = Policy {
        check_every_calls: 1,
        ..Policy::default()
    };
    let clock = FakeClock::default();
    let mut p = Progress::with(
        "big.csv",
        60_000_000,
        Mode::Log,
        policy,
        Box::new(clock.clone()),
    );
    let out = logged(|| {
        // 35 s of reading: each second 1,000 lines and 1 MB.
        for sec in 1..=35 {
            clock.advance(Duration::from_secs(1));
            p.update(sec * 1_000_000, sec * 1000);
        }
        p.finish("applied");
    });
    let reading: Vec<_> = out.iter().filter(|l| l.contains("reading")).collect();
    assert_eq!(reading.len(), 3, "{out:#?}");
    assert!(
        reading[0].ends_with(
            "reading file=big.csv percent=16.7 bytes=10000000 total_bytes=60000000 \
             lines=10000 lines_per_s=1000 eta=50s"
        ),
        "{}",
        reading[0]
    );
    assert!(reading[1].contains(" lines=20000 "), "{}", reading[1]);
    assert!(reading[2].contains(" lines=30000 "), "{}", reading[2]);
    let last = out.last().unwrap();
    assert!(
        last.ends_with(
            "file read file=big.csv outcome=\"applied\" lines=35000 lines_per_s=1000 elapsed=35s"
        ),
        "{last}"
    );
}

#[test]
fn a_short_file_logs_nothing_at_all() {
    let (mut p, clock) = progress(60_000_000, Mode::Log);
    let out = logged(|| {
        for i in 1..=5000 {
            p.update(i * 100, i);
        }
        clock.advance(Duration::from_millis(9_900));
        for i in 5001..=5200 {
            p.update(i * 100, i);
        }
        p.finish("applied");
    });
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn a_file_without_offsets_logs_lines_and_rate_only() {
    let (mut p, clock) = progress(50_000_000, Mode::Log);
    let out = logged(|| {
        clock.advance(Duration::from_secs(20));
        for i in 1..=64 {
            p.update(0, i * 10);
        }
    });
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(
        out[0].contains("lines=640 lines_per_s=32 elapsed=20s"),
        "{}",
        out[0]
    );
    assert!(!out[0].contains("percent"), "{}", out[0]);
}

#[test]
fn a_large_file_gets_a_bar_at_its_first_check() {
    let (mut p, _clock) = progress(9 << 20, HIDDEN);
    for i in 1..=63 {
        p.update(i * 10, i);
    }
    assert!(p.bar.is_none());
    p.update(640, 64);
    assert_eq!(p.bar.as_ref().map(|b| b.position()), Some(640));
}

#[test]
fn a_small_file_gets_a_bar_only_after_two_seconds() {
    let (mut p, clock) = progress(1 << 20, HIDDEN);
    for i in 1..=640 {
        p.update(i, i);
    }
    assert!(p.bar.is_none(), "too early");
    clock.advance(Duration::from_secs(2));
    for i in 641..=704 {
        p.update(i, i);
    }
    assert_eq!(p.bar.as_ref().map(|b| b.position()), Some(704));
}

#[test]
fn the_bar_is_redrawn_at_most_every_100_ms() {
    let (mut p, clock) = progress(9 << 20, HIDDEN);
    for i in 1..=64 {
        p.update(i, i);
    }
    for i in 65..=640 {
        p.update(i, i);
    }
    assert_eq!(p.bar.as_ref().unwrap().position(), 64, "not due yet");
    clock.advance(Duration::from_millis(100));
    for i in 641..=704 {
        p.update(i, i);
    }
    assert_eq!(p.bar.as_ref().unwrap().position(), 704);
}

#[test]
fn the_bar_is_cleared_on_finish_and_on_drop_and_writes_no_log() {
    let out = logged(|| {
        let (mut p, _clock) = progress(9 << 20, HIDDEN);
        for i in 1..=64 {
            p.update(i, i);
        }
        let bar = p.bar.clone().unwrap();
        p.finish("applied");
        assert!(bar.is_finished());

        let (mut p, _clock) = progress(9 << 20, HIDDEN);
        for i in 1..=64 {
            p.update(i, i);
        }
        let bar = p.bar.clone().unwrap();
        drop(p);
        assert!(bar.is_finished());
    });
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn figures_from_a_snapshot() {
    let s = Snapshot {
        elapsed: Duration::from_secs(20),
        pos: 25,
        total: 100,
        lines: 5000,
    };
    assert_eq!(s.percent(), Some(25.0));
    assert_eq!(s.lines_per_sec(), 250);
    assert_eq!(s.eta(), Some(Duration::from_secs(60)));
    let unknown = Snapshot { pos: 0, ..s };
    assert_eq!((unknown.percent(), unknown.eta()), (None, None));
    let past_end = Snapshot { pos: 120, ..s };
    assert_eq!(past_end.percent(), Some(100.0));
    assert_eq!(past_end.eta(), Some(Duration::ZERO));
    let at_once = Snapshot {
        elapsed: Duration::ZERO,
        ..s
    };
    assert_eq!(at_once.lines_per_sec(), 0);
}

#[test]
fn the_bar_says_lines_rate_and_time_left() {
    let s = Snapshot {
        elapsed: Duration::from_secs(20),
        pos: 25,
        total: 100,
        lines: 5000,
    };
    assert_eq!(bar_message(&s), "5,000 lines, 250/s, ETA 1m00s");
    let sheet = Snapshot { pos: 0, ..s };
    assert_eq!(bar_message(&sheet), "5,000 lines, 250/s");
}

#[test]
fn durations_read_at_a_glance() {
    assert_eq!(Hms(Duration::from_secs(14)).to_string(), "14s");
    assert_eq!(Hms(Duration::from_secs(200)).to_string(), "3m20s");
    assert_eq!(Hms(Duration::from_secs(3720)).to_string(), "1h02m");
}

#[test]
fn long_names_are_cut_on_a_character_boundary() {
    assert_eq!(short_name("a.csv", 32), "a.csv");
    let cut = short_name(&"é".repeat(40), 32);
    assert_eq!(cut.chars().count(), 32);
    assert!(cut.ends_with('…'));
}
