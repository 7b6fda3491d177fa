//! Where log lines go and what they look like. tallyman runs from systemd timers, cron and
//! by hand at a terminal; each reader of stderr wants something different. A terminal gets
//! coloured text; a pipe, a file or journald gets plain text (colour codes there are noise
//! that breaks grep); journald gets no timestamp of ours (it stamps every line itself) and a
//! `<N>` syslog priority prefix so `journalctl -p warning` works; log shippers (Loki, an
//! ELK pipeline) get one JSON object per line with `--log-format json`.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

/// The environment variable holding the level filter (`warn` when unset or invalid).
pub const LEVEL_ENV: &str = "TALLYMAN_LOG";
/// The environment variable the `--log-format` flag falls back to.
pub const FORMAT_ENV: &str = "TALLYMAN_LOG_FORMAT";

/// The shape of log lines on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colour only on a terminal.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and the event's fields.
    Json,
}

/// How text lines are dressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TextStyle {
    ansi: bool,
    journald: bool,
}

/// What the choice of style depends on, gathered first so the choice is a pure function.
#[derive(Clone, Copy, Debug, Default)]
struct Surroundings {
    stderr_is_tty: bool,
    no_color: bool,
    stderr_is_journal: bool,
}

impl Surroundings {
    fn detect() -> Surroundings {
        Surroundings {
            stderr_is_tty: std::io::stderr().is_terminal(),
            // no-color.org: set and not empty.
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            stderr_is_journal: std::env::var("JOURNAL_STREAM")
                .ok()
                .is_some_and(|v| stderr_is_stream(&v)),
        }
    }
}

fn text_style(s: Surroundings) -> TextStyle {
    TextStyle {
        ansi: s.stderr_is_tty && !s.no_color && !s.stderr_is_journal,
        journald: s.stderr_is_journal,
    }
}

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tells a person on stderr why a command failed: `tallyman: <message>` as text, or an
/// `error` event in JSON mode, so a log shipper never meets a line it cannot parse.
pub fn error_line(message: &str) {
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!("{message}");
    } else {
        eprintln!("tallyman: {message}");
    }
}

/// A detail under an error line (one of several config errors): indented text, or its own
/// `error` event in JSON mode.
pub fn error_detail(message: &str) {
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!("{message}");
    } else {
        eprintln!("  {message}");
    }
}

/// `error_line` with `format!` arguments.
#[macro_export]
macro_rules! complain {
    ($($t:tt)*) => { $crate::logging::error_line(&format!($($t)*)) };
}

/// Installs the global subscriber: level filter from `TALLYMAN_LOG` (default `warn`), lines
/// to stderr in the given format.
pub fn init(format: LogFormat) {
    JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let filter = EnvFilter::try_from_env(LEVEL_ENV).unwrap_or_else(|_| EnvFilter::new("warn"));
    let style = text_style(Surroundings::detect());
    // Around the progress bar, not through it, when one is on screen.
    let layer = layer_to(|| crate::progress::StderrAroundBar, format, style);
    tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .init();
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn layer_to<W>(writer: W, format: LogFormat, style: TextStyle) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let base = fmt::layer().with_writer(writer);
    match (format, style.journald) {
        // Flattened: `message` and the fields sit beside `level`, where Loki and jq look.
        (LogFormat::Json, _) => base.json().flatten_event(true).boxed(),
        (LogFormat::Text, true) => base
            .with_ansi(false)
            .event_format(SyslogPriority(
                format::format().without_time().with_ansi(false),
            ))
            .boxed(),
        (LogFormat::Text, false) => base.with_ansi(style.ansi).boxed(),
    }
}

/// Prefixes each line with its syslog priority in the `<N>` form journald strips and files
/// as the entry's PRIORITY, so alerting can filter on it.
struct SyslogPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for SyslogPriority<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose output goes to the journal.
/// The variable is inherited by children whose stderr may be elsewhere (a shell started from
/// the service, a redirect), so it counts only when it names the stream stderr really is.
fn stderr_is_stream(journal_stream: &str) -> bool {
    let Some(wanted) = parse_journal_stream(journal_stream) else {
        return false;
    };
    stderr_dev_ino() == Some(wanted)
}

fn parse_journal_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(unix)]
fn stderr_dev_ino() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn stderr_dev_ino() -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(stderr_is_tty: bool, no_color: bool, stderr_is_journal: bool) -> TextStyle {
        text_style(Surroundings {
            stderr_is_tty,
            no_color,
            stderr_is_journal,
        })
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(style(true, false, false).ansi);
        assert!(!style(false, false, false).ansi, "pipe or file");
        assert!(!style(true, true, false).ansi, "NO_COLOR");
        assert!(!style(false, false, true).ansi, "journald");
    }

    #[test]
    fn journald_style_only_when_stderr_is_the_journal_stream() {
        assert!(style(false, false, true).journald);
        assert!(!style(false, false, false).journald);
    }

    #[test]
    fn journal_stream_is_parsed_strictly() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:12345\n"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream(""), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_journal_stream_naming_another_file_is_ignored() {
        use std::os::unix::fs::MetadataExt;
        let f = tempfile::tempfile().unwrap();
        let m = f.metadata().unwrap();
        assert!(!stderr_is_stream(&format!("{}:{}", m.dev(), m.ino())));
        let (dev, ino) = stderr_dev_ino().expect("stderr is open in tests");
        assert!(stderr_is_stream(&format!("{dev}:{ino}")));
    }

    /// Collects what the layer writes, as stderr would receive it.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(format: LogFormat, style: TextStyle) -> String {
        let out = Captured::default();
        let sink = out.clone();
        let layer = layer_to(move || sink.clone(), format, style);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(file = "a.csv", lines = 3u64, "file changed");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn journald_lines_carry_a_priority_and_no_timestamp() {
        let s = lines_of(LogFormat::Text, style(false, false, true));
        assert!(
            s.starts_with("<4> WARN tallyman::logging::tests: file changed file=\"a.csv\" lines=3"),
            "{s:?}"
        );
        assert!(!s.contains("\x1b["), "{s:?}");
    }

    #[test]
    fn plain_text_lines_have_a_timestamp_and_no_colour() {
        let s = lines_of(LogFormat::Text, style(false, false, false));
        assert!(s.starts_with("20"), "RFC 3339 timestamp first: {s:?}");
        assert!(
            s.contains(" WARN tallyman::logging::tests: file changed"),
            "{s:?}"
        );
        assert!(!s.contains("\x1b["), "{s:?}");
    }

    #[test]
    fn terminal_text_lines_are_coloured() {
        let s = lines_of(LogFormat::Text, style(true, false, false));
        assert!(s.contains("\x1b["), "{s:?}");
    }

    #[test]
    fn json_lines_are_flat_objects() {
        let s = lines_of(LogFormat::Json, style(true, false, true));
        assert_eq!(s.lines().count(), 1, "{s:?}");
        let v: serde_json::Value = serde_json::from_str(s.trim_end()).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "file changed");
        assert_eq!(v["file"], "a.csv");
        assert_eq!(v["lines"], 3);
        assert_eq!(v["target"], "tallyman::logging::tests");
        assert!(v["timestamp"].as_str().is_some_and(|t| t.starts_with("20")));
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(syslog_priority(Level::ERROR), 3);
        assert_eq!(syslog_priority(Level::WARN), 4);
        assert_eq!(syslog_priority(Level::INFO), 6);
        assert_eq!(syslog_priority(Level::DEBUG), 7);
    }
}
