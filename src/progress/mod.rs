//! Signs of life while a long file is read. A 300,000-line file otherwise says nothing until
//! it is done, and whoever watches (a person at a terminal, or the journal during an
//! incident) cannot tell a slow file from a hung process. At a terminal a bar on stderr
//! shows bytes, percent, lines, lines/s and the time left; anywhere else an `info` line
//! every 10 s says the same. Short files show nothing at all.
//!
//! The engine calls [`Progress::update`] once per unit, so it must cost next to nothing:
//! the clock is read only every [`Policy::check_every_calls`] calls, and anything is drawn
//! or logged only when due. The clock and the terminal decision are injectable for tests.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A monotonic clock: time since an arbitrary origin.
pub trait Clock: Send {
    fn now(&self) -> Duration;
}

/// The real clock.
pub struct MonotonicClock(Instant);

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Where progress goes.
#[derive(Clone, Copy)]
pub enum Mode {
    /// A bar drawn on this target (stderr at a terminal; hidden in tests).
    Bar(fn() -> ProgressDrawTarget),
    /// `tracing::info!` lines.
    Log,
}

impl Mode {
    /// A bar when stderr is a terminal that can draw one, log lines otherwise.
    pub fn detect() -> Mode {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if std::io::stderr().is_terminal() && !dumb {
            Mode::Bar(ProgressDrawTarget::stderr)
        } else {
            Mode::Log
        }
    }
}

/// When progress is worth showing and how often it speaks.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// A file at least this large gets a bar from its first check on.
    pub bar_min_bytes: u64,
    /// A smaller file gets a bar once it has been read for this long.
    pub bar_after: Duration,
    /// How often the bar's numbers are refreshed.
    pub redraw_every: Duration,
    /// How often a log line is written; a file done sooner logs nothing.
    pub log_every: Duration,
    /// The clock is read at most once per this many `update` calls ...
    pub check_every_calls: u32,
    /// ... or once this many lines have gone by: one huge unit (an X12 set of 50,000
    /// segments) is slow enough that a clock read per unit costs nothing.
    pub check_every_lines: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            bar_min_bytes: 8 << 20,
            bar_after: Duration::from_secs(2),
            redraw_every: Duration::from_millis(100),
            log_every: Duration::from_secs(10),
            check_every_calls: 64,
            check_every_lines: 4096,
        }
    }
}

/// The progress of reading one file.
pub struct Progress {
    name: String,
    total_bytes: u64,
    mode: Mode,
    policy: Policy,
    clock: Box<dyn Clock>,
    started: Duration,
    /// When the next redraw or log line is due.
    due: Duration,
    calls_since_check: u32,
    lines_at_check: u64,
    pos: u64,
    lines: u64,
    bar: Option<ProgressBar>,
    logged: bool,
    finished: bool,
}

impl Progress {
    /// Starts tracking a file of `total_bytes`, showing a bar or writing log lines
    /// depending on where stderr goes.
    pub fn start(file_name: &str, total_bytes: u64) -> Progress {
        let clock = Box::new(MonotonicClock::new());
        Progress::with(
            file_name,
            total_bytes,
            Mode::detect(),
            Policy::default(),
            clock,
        )
    }

    /// [`Progress::start`] with everything chosen by the caller.
    pub fn with(
        file_name: &str,
        total_bytes: u64,
        mode: Mode,
        policy: Policy,
        clock: Box<dyn Clock>,
    ) -> Progress {
        let started = clock.now();
        let first = match mode {
            Mode::Bar(_) if total_bytes >= policy.bar_min_bytes => Duration::ZERO,
            Mode::Bar(_) => policy.bar_after,
            Mode::Log => policy.log_every,
        };
        Progress {
            name: file_name.to_string(),
            total_bytes,
            mode,
            policy,
            clock,
            started,
            due: started + first,
            calls_since_check: 0,
            lines_at_check: 0,
            pos: 0,
            lines: 0,
            bar: None,
            logged: false,
            finished: false,
        }
    }

    /// Records where reading is: `byte_pos` is the offset reached in the file (0 when the
    /// format has no meaningful offset, e.g. a spreadsheet), `lines` the lines read so far.
    pub fn update(&mut self, byte_pos: u64, lines: u64) {
        self.pos = byte_pos;
        self.lines = lines;
        self.calls_since_check += 1;
        let enough_lines =
            lines.saturating_sub(self.lines_at_check) >= self.policy.check_every_lines;
        if self.calls_since_check < self.policy.check_every_calls && !enough_lines {
            return;
        }
        self.calls_since_check = 0;
        self.lines_at_check = lines;
        let now = self.clock.now();
        if now >= self.due {
            self.speak(now);
        }
    }

    /// Ends the display: the bar is cleared (the summary on stdout says how the file
    /// ended); a file that wrote progress lines gets a closing line with its outcome.
    /// Once only: later calls say nothing.
    pub fn finish(&mut self, outcome: &str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.clear_bar();
        if self.logged {
            let s = self.snapshot(self.clock.now());
            tracing::info!(
                file = %self.name,
                outcome,
                lines = s.lines,
                lines_per_s = s.lines_per_sec(),
                elapsed = %Hms(s.elapsed),
                "file read"
            );
        }
    }

    fn speak(&mut self, now: Duration) {
        let s = self.snapshot(now);
        match self.mode {
            Mode::Bar(target) => {
                self.draw(target, &s);
                self.due = now + self.policy.redraw_every;
            }
            Mode::Log => {
                log_line(&self.name, &s);
                self.logged = true;
                self.due = now + self.policy.log_every;
            }
        }
    }

    fn draw(&mut self, target: fn() -> ProgressDrawTarget, s: &Snapshot) {
        match &self.bar {
            Some(bar) => {
                // The message first: setting the position draws.
                bar.set_message(bar_message(s));
                bar.set_position(s.pos.min(s.total));
            }
            None => self.bar = Some(new_bar(&self.name, s, target())),
        }
    }

    fn clear_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            set_active(None);
            bar.finish_and_clear();
        }
    }

    fn snapshot(&self, now: Duration) -> Snapshot {
        Snapshot {
            elapsed: now.saturating_sub(self.started),
            pos: self.pos,
            total: self.total_bytes,
            lines: self.lines,
        }
    }
}

impl Drop for Progress {
    /// A file abandoned on an error must not leave its bar on the screen.
    fn drop(&mut self) {
        self.clear_bar();
    }
}

fn new_bar(name: &str, s: &Snapshot, target: ProgressDrawTarget) -> ProgressBar {
    let (len, template) = match s.percent() {
        // Kept under 80 columns with a short name: the bar takes what is left.
        Some(_) => (
            Some(s.total),
            "{prefix} [{wide_bar}] {percent:>3}% of {total_bytes} · {msg}",
        ),
        // No byte offsets (spreadsheets): lines and rate only.
        None => (None, "{spinner} {prefix} · {msg} · {elapsed}"),
    };
    let style = ProgressStyle::with_template(template)
        .expect("the templates are constant")
        .progress_chars("=> ");
    // Filled in while hidden, so the first frame on screen is complete.
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden()).with_style(style);
    bar.set_prefix(short_name(name, 24));
    bar.set_message(bar_message(s));
    bar.set_position(s.pos.min(s.total));
    bar.set_draw_target(target);
    set_active(Some(bar.clone()));
    bar
}

/// Lines, rate and time left. The ETA is ours, not indicatif's: the same figure as in the
/// log lines, from the average rate since the start.
fn bar_message(s: &Snapshot) -> String {
    let mut msg = format!(
        "{} lines, {}/s",
        HumanCount(s.lines),
        HumanCount(s.lines_per_sec())
    );
    if let Some(eta) = s.eta() {
        msg.push_str(&format!(", ETA {}", Hms(eta)));
    }
    msg
}

fn log_line(name: &str, s: &Snapshot) {
    match (s.percent(), s.eta()) {
        (Some(percent), Some(eta)) => tracing::info!(
            file = %name,
            percent = (percent * 10.0).round() / 10.0,
            bytes = s.pos,
            total_bytes = s.total,
            lines = s.lines,
            lines_per_s = s.lines_per_sec(),
            eta = %Hms(eta),
            "reading"
        ),
        _ => tracing::info!(
            file = %name,
            lines = s.lines,
            lines_per_s = s.lines_per_sec(),
            elapsed = %Hms(s.elapsed),
            "reading"
        ),
    }
}

/// Where reading stood at one moment, with the figures derived from it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Snapshot {
    elapsed: Duration,
    pos: u64,
    total: u64,
    lines: u64,
}

impl Snapshot {
    /// None when the position says nothing: no size, or a format without byte offsets.
    fn percent(&self) -> Option<f64> {
        if self.total == 0 || self.pos == 0 {
            return None;
        }
        Some(100.0 * self.pos.min(self.total) as f64 / self.total as f64)
    }

    fn lines_per_sec(&self) -> u64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0;
        }
        (self.lines as f64 / secs) as u64
    }

    /// Time left at the average byte rate so far.
    fn eta(&self) -> Option<Duration> {
        self.percent()?;
        let left = self.total.saturating_sub(self.pos) as f64;
        Some(self.elapsed.mul_f64(left / self.pos as f64))
    }
}

/// A duration as `1h02m`, `3m20s` or `14s`: read at a glance in a log line.
struct Hms(Duration);

impl std::fmt::Display for Hms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.as_secs();
        match (s / 3600, s % 3600 / 60, s % 60) {
            (0, 0, sec) => write!(f, "{sec}s"),
            (0, m, sec) => write!(f, "{m}m{sec:02}s"),
            (h, m, _) => write!(f, "{h}h{m:02}m"),
        }
    }
}

/// The file name, cut on a character boundary so the bar fits a line.
fn short_name(name: &str, max_chars: usize) -> String {
    if name.chars().count() <= max_chars {
        return name.to_string();
    }
    let head: String = name.chars().take(max_chars - 1).collect();
    format!("{head}…")
}

/// The bar on screen now, if any, so that log lines written meanwhile (from any thread)
/// can lift it out of the way instead of being drawn through.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn set_active(bar: Option<ProgressBar>) {
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Runs `f` (which writes to stderr) with the bar on screen, if any, hidden meanwhile.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let bar = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// stderr for log lines, written around the progress bar instead of through it.
pub struct StderrAroundBar;

impl Write for StderrAroundBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests;
