//! Dates and date-times of the tabular language: which chrono patterns are usable, and how
//! a value becomes ISO 8601.
//!
//! Real exports write dates with a time attached (`5/19/2006 0:00:00` from Access, SQL
//! Server or Excel) and instants in every local convention. A `date` field reads the day
//! and ignores any time in its pattern; a `datetime` field keeps the instant and always
//! outputs it with its UTC offset, because a time without an offset is ambiguous by hours.
//! So a value that carries no offset gets the field's `timezone`, a fixed offset (`"UTC"`,
//! `"+01:00"`): named zones with daylight saving would need the tz database, and a partner
//! whose local time shifts twice a year should send offsets instead.
//!
//! chrono accepts almost any pattern, so patterns are checked at load by formatting a
//! sample instant and reading it back: a pattern that cannot identify the day (or, for a
//! date-time, the minute) is refused with its line instead of rejecting every row.

use chrono::format::{Fixed, Item, StrftimeItems};
use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset, SecondsFormat, TimeZone, Utc,
};

/// The sample every pattern must round-trip: 2024-11-23 13:45:00 at +01:00.
fn sample() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2024-11-23T13:45:00+01:00").unwrap_or_default()
}

fn utc() -> FixedOffset {
    Utc.fix()
}

/// What a pattern holds, as far as checking it goes.
struct Parts {
    offset: bool,
}

fn parts(fmt: &str, what: &str) -> Result<Parts, String> {
    let mut offset = false;
    for item in StrftimeItems::new(fmt) {
        match item {
            Item::Error => return Err(format!("invalid {what} pattern '{fmt}'")),
            Item::Fixed(Fixed::TimezoneName) => {
                return Err(format!(
                    "{what} pattern '{fmt}': time zone names (%Z) cannot be read; use %z (+0100) or %:z (+01:00)"
                ))
            }
            Item::Fixed(
                Fixed::TimezoneOffset
                | Fixed::TimezoneOffsetColon
                | Fixed::TimezoneOffsetDoubleColon
                | Fixed::TimezoneOffsetTripleColon
                | Fixed::TimezoneOffsetColonZ
                | Fixed::TimezoneOffsetZ
                | Fixed::RFC2822
                | Fixed::RFC3339,
            ) => offset = true,
            _ => {}
        }
    }
    Ok(Parts { offset })
}

fn format_sample(fmt: &str) -> Option<String> {
    let mut text = String::new();
    // Formatting can fail on odd patterns (and `to_string` would panic on it).
    std::fmt::Write::write_fmt(&mut text, format_args!("{}", sample().format(fmt)))
        .ok()
        .map(|_| text)
}

/// A `date` pattern must identify a day. It may also hold a time (and an offset), which
/// is read and then ignored: `%m/%d/%Y %H:%M:%S` reads `5/19/2006 0:00:00` as 2006-05-19.
pub fn check_date_pattern(fmt: &str) -> Result<(), String> {
    parts(fmt, "date")?;
    let text = format_sample(fmt).ok_or_else(|| format!("invalid date pattern '{fmt}'"))?;
    match NaiveDate::parse_from_str(&text, fmt) {
        Ok(d) if d == sample().date_naive() => Ok(()),
        _ => Err(format!(
            "date pattern '{fmt}' cannot identify a day (it needs year, month and day, e.g. '%d.%m.%Y')"
        )),
    }
}

/// A `datetime` pattern must identify a minute; returns whether it carries an offset.
pub fn check_datetime_pattern(fmt: &str) -> Result<bool, String> {
    let p = parts(fmt, "datetime")?;
    let text = format_sample(fmt).ok_or_else(|| format!("invalid datetime pattern '{fmt}'"))?;
    let ok = if p.offset {
        DateTime::parse_from_str(&text, fmt).is_ok_and(|d| d == sample())
    } else {
        NaiveDateTime::parse_from_str(&text, fmt).is_ok_and(|d| d == sample().naive_local())
    };
    if ok {
        Ok(p.offset)
    } else {
        Err(format!(
            "datetime pattern '{fmt}' cannot identify a date and time (it needs year, month, day, hour and minute, e.g. '%d.%m.%Y %H:%M'; use type = \"date\" for a day)"
        ))
    }
}

/// Parses a `timezone`: `UTC`, `Z`, or an offset `+01:00` / `-0530` / `+01`.
pub fn parse_timezone(s: &str) -> Result<FixedOffset, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") || t == "GMT" {
        return Ok(utc());
    }
    let bad = || {
        format!("timezone '{s}' is not a fixed offset: write \"UTC\" or an offset such as \"+01:00\" (named zones such as Europe/Berlin are not supported)")
    };
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return Err(bad());
    }
    let h: i32 = digits[..2].parse().map_err(|_| bad())?;
    let m: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Ok(0), |m| m.parse())
        .map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

/// How a `datetime` field reads its values.
#[derive(Debug, Clone)]
pub struct DateTimeSpec {
    /// The chrono pattern; `None` for ISO 8601 / RFC 3339 (`2012-09-26T12:00:00`, with `T`
    /// or a space, optional fraction, optional `Z` or offset).
    pub format: Option<String>,
    /// The offset of values that carry none.
    pub timezone: Option<FixedOffset>,
}

impl DateTimeSpec {
    /// Reads a text value.
    pub fn parse(&self, text: &str) -> Option<DateTime<FixedOffset>> {
        match &self.format {
            Some(fmt) => DateTime::parse_from_str(text, fmt).ok().or_else(|| {
                let naive = NaiveDateTime::parse_from_str(text, fmt).ok()?;
                self.localise(naive)
            }),
            None => self.parse_iso(text),
        }
    }

    fn parse_iso(&self, text: &str) -> Option<DateTime<FixedOffset>> {
        if let Ok(d) = DateTime::parse_from_rfc3339(text) {
            return Some(d);
        }
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .and_then(|n| self.localise(n))
    }

    /// A naive value (a spreadsheet date cell, or text without an offset) in `timezone`.
    pub fn localise(&self, naive: NaiveDateTime) -> Option<DateTime<FixedOffset>> {
        self.timezone?.from_local_datetime(&naive).single()
    }

    /// Reads a spreadsheet date cell: `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`.
    pub fn from_cell(&self, iso: &str) -> Option<DateTime<FixedOffset>> {
        let naive = NaiveDateTime::parse_from_str(iso, "%Y-%m-%dT%H:%M:%S")
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(iso, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })?;
        self.localise(naive)
    }

    /// Describes the expected input for messages.
    pub fn describe(&self) -> String {
        match &self.format {
            Some(f) => format!("in the format {f}"),
            None => "in ISO 8601 (e.g. 2024-11-23T13:45:00+01:00)".to_string(),
        }
    }
}

/// ISO 8601 with the value's own offset; `Z` for UTC; seconds always, a fraction only
/// when there is one.
pub fn iso(dt: &DateTime<FixedOffset>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reads a `min`/`max` bound of a datetime field: RFC 3339, or a local date-time in the
/// field's timezone. TOML date-times (unquoted) arrive here as their text.
pub fn parse_bound(text: &str, spec: &DateTimeSpec) -> Option<DateTime<FixedOffset>> {
    DateTimeSpec {
        format: None,
        timezone: spec.timezone,
    }
    .parse_iso(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: Option<&str>, tz: Option<&str>) -> DateTimeSpec {
        DateTimeSpec {
            format: format.map(String::from),
            timezone: tz.map(|t| parse_timezone(t).unwrap()),
        }
    }

    #[test]
    fn regression_dates_with_a_time_of_day_were_refused() {
        // Both shapes come from real exports; a date pattern may now hold the time.
        check_date_pattern("%m/%d/%Y %H:%M:%S").unwrap();
        check_date_pattern("%Y/%m/%d %H:%M:%S").unwrap();
        assert_eq!(
            NaiveDate::parse_from_str("5/19/2006 0:00:00", "%m/%d/%Y %H:%M:%S").ok(),
            NaiveDate::from_ymd_opt(2006, 5, 19)
        );
        let s = spec(Some("%Y/%m/%d %H:%M:%S"), Some("UTC"));
        let dt = s.parse("2012/09/26 12:00:00").unwrap();
        assert_eq!(iso(&dt), "2012-09-26T12:00:00Z");
        let s = spec(Some("%m/%d/%Y %H:%M:%S"), Some("+01:00"));
        assert_eq!(
            iso(&s.parse("5/19/2006 0:00:00").unwrap()),
            "2006-05-19T00:00:00+01:00"
        );
    }

    #[test]
    fn patterns_are_checked_for_what_they_identify() {
        assert!(check_date_pattern("%H:%M")
            .unwrap_err()
            .contains("cannot identify a day"));
        assert!(check_date_pattern("%Y-%m").is_err());
        assert!(check_date_pattern("%Q").unwrap_err().contains("invalid"));
        assert_eq!(check_datetime_pattern("%d.%m.%Y %H:%M"), Ok(false));
        assert_eq!(check_datetime_pattern("%Y-%m-%dT%H:%M:%S%:z"), Ok(true));
        assert!(check_datetime_pattern("%Y-%m-%d")
            .unwrap_err()
            .contains("use type = \"date\""));
        assert!(check_datetime_pattern("%Y-%m-%d %H:%M %Z")
            .unwrap_err()
            .contains("%Z"));
    }

    #[test]
    fn offsets_in_values_win_over_the_timezone() {
        let s = spec(Some("%Y-%m-%d %H:%M:%S %z"), None);
        let dt = s.parse("2026-03-01 08:30:00 -0500").unwrap();
        assert_eq!(iso(&dt), "2026-03-01T08:30:00-05:00");
        let s = spec(None, Some("+02:00"));
        assert_eq!(
            iso(&s.parse("2026-03-01T08:30:00Z").unwrap()),
            "2026-03-01T08:30:00Z"
        );
        assert_eq!(
            iso(&s.parse("2026-03-01 08:30:00.250").unwrap()),
            "2026-03-01T08:30:00.250+02:00"
        );
        assert_eq!(
            iso(&s.from_cell("2026-03-01").unwrap()),
            "2026-03-01T00:00:00+02:00"
        );
        assert!(s.parse("2026-02-30T08:30:00").is_none());
        // Without a timezone a naive value has no instant.
        assert!(spec(None, None).parse("2026-03-01T08:30:00").is_none());
    }

    #[test]
    fn timezones_are_fixed_offsets() {
        assert_eq!(parse_timezone("UTC").unwrap().local_minus_utc(), 0);
        assert_eq!(parse_timezone("+01:00").unwrap().local_minus_utc(), 3600);
        assert_eq!(parse_timezone("-0530").unwrap().local_minus_utc(), -19800);
        assert_eq!(parse_timezone("+09").unwrap().local_minus_utc(), 32400);
        assert!(parse_timezone("Europe/Berlin")
            .unwrap_err()
            .contains("named zones"));
        assert!(parse_timezone("+25:00").is_err());
    }
}
