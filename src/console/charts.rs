//! Small inline SVG bar charts over a time window — an hour per bar for the last 24 hours,
//! a day per bar for 30 days — drawn on the server, so they need no script and print as
//! they look. Each bar carries a `<title>` (its bucket and value) that browsers show on
//! hover and screen readers read.

use std::collections::BTreeMap;

use maud::{html, Markup};

/// The window a dashboard shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Day,
    Month,
}

impl Window {
    pub fn parse(s: Option<&str>) -> Window {
        match s {
            Some("30d") => Window::Month,
            _ => Window::Day,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Month => "30d",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Window::Day => "last 24 hours",
            Window::Month => "last 30 days",
        }
    }
    pub fn seconds(self) -> i64 {
        match self {
            Window::Day => 86_400,
            Window::Month => 30 * 86_400,
        }
    }
    /// How many characters of an ISO time name its bucket (hour or day).
    pub fn prefix(self) -> usize {
        match self {
            Window::Day => 13,
            Window::Month => 10,
        }
    }
    /// The buckets of the window ending now, oldest first, as ISO prefixes.
    pub fn buckets(self) -> Vec<String> {
        let now = chrono::Utc::now();
        let (n, step, fmt) = match self {
            Window::Day => (24, chrono::Duration::hours(1), "%Y-%m-%dT%H"),
            Window::Month => (30, chrono::Duration::days(1), "%Y-%m-%d"),
        };
        (0..n)
            .rev()
            .map(|i| (now - step * i).format(fmt).to_string())
            .collect()
    }
}

/// Values by bucket, in the window's buckets (missing buckets are `None`).
pub fn align(
    w: Window,
    values: impl IntoIterator<Item = (String, f64)>,
) -> Vec<(String, Option<f64>)> {
    let map: BTreeMap<String, f64> = values.into_iter().collect();
    w.buckets()
        .into_iter()
        .map(|b| {
            let v = map.get(&b).copied();
            (b, v)
        })
        .collect()
}

/// Time-stamped samples reduced to the last value in each bucket.
pub fn last_per_bucket(w: Window, samples: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut map = BTreeMap::new();
    for (at, v) in samples {
        if let Some(b) = at.get(..w.prefix()) {
            map.insert(b.to_string(), *v);
        }
    }
    map.into_iter().collect()
}

const W: f64 = 240.0;
const H: f64 = 60.0;
const TOP: f64 = 4.0;

/// A bar chart; `goal` draws a dashed line at that value and paints bars above it red;
/// `fmt` writes a value for the tooltips.
pub fn bars(
    label: &str,
    series: &[(String, Option<f64>)],
    goal: Option<f64>,
    fmt: &dyn Fn(f64) -> String,
) -> Markup {
    let max = series
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(goal.map_or(0.0, |g| g * 2.0), f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let n = series.len().max(1) as f64;
    let slot = W / n;
    let y = |v: f64| H - (v / max) * (H - TOP);
    html! {
        svg.chart viewBox="0 0 240 70" preserveAspectRatio="none" role="img" aria-label=(label) {
            title { (label) }
            line.axis x1="0" y1=(H) x2=(W) y2=(H) {}
            @for (i, (bucket, v)) in series.iter().enumerate() {
                @if let Some(v) = v {
                    @let h = (H - y(*v)).max(if *v > 0.0 { 1.0 } else { 0.0 });
                    rect class=(if goal.is_some_and(|g| *v > g) { "bar over" } else { "bar" })
                        x=(format!("{:.2}", i as f64 * slot + slot * 0.1)) y=(format!("{:.2}", H - h))
                        width=(format!("{:.2}", slot * 0.8)) height=(format!("{:.2}", h)) {
                        title { (bucket.replace('T', " ")) ": " (fmt(*v)) }
                    }
                }
            }
            @if let Some(g) = goal {
                line.goal x1="0" y1=(format!("{:.2}", y(g))) x2=(W) y2=(format!("{:.2}", y(g))) {}
            }
            @if let Some((first, _)) = series.first() {
                text x="0" y="69" { (ago(first)) }
                text x=(W) y="69" text-anchor="end" { "now" }
            }
        }
    }
}

/// The left end of the axis: how far back the window reaches.
fn ago(first_bucket: &str) -> &'static str {
    if first_bucket.contains('T') {
        "24 h ago"
    } else {
        "30 days ago"
    }
}

/// A gauge's samples with its value now as the newest bucket, so the chart shows the
/// present even before the next sample is taken.
pub fn with_now(w: Window, samples: &[(String, f64)], now: f64) -> Vec<(String, f64)> {
    let mut v = last_per_bucket(w, samples);
    let current = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    v.retain(|(b, _)| !current.starts_with(b.as_str()));
    v.push((current[..w.prefix()].to_string(), now));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_has_one_bucket_per_hour_or_day_ending_now() {
        let day = Window::Day.buckets();
        assert_eq!(day.len(), 24);
        assert_eq!(
            day[23],
            chrono::Utc::now().format("%Y-%m-%dT%H").to_string()
        );
        assert_eq!(Window::Month.buckets().len(), 30);
        assert_eq!(Window::parse(Some("30d")), Window::Month);
        assert_eq!(Window::parse(Some("junk")), Window::Day);
    }

    #[test]
    fn bars_above_the_goal_are_marked_and_missing_buckets_draw_nothing() {
        let series = vec![
            ("2026-01-01T10".to_string(), Some(0.0005)),
            ("2026-01-01T11".to_string(), None),
            ("2026-01-01T12".to_string(), Some(0.01)),
        ];
        let svg = bars("error rate", &series, Some(0.001), &|v| format!("{v}")).into_string();
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert_eq!(svg.matches("bar over").count(), 1, "{svg}");
        assert!(svg.contains("class=\"goal\""));
        assert!(svg.contains("2026-01-01 12: 0.01"));
    }

    #[test]
    fn samples_keep_the_last_value_of_each_bucket() {
        let s = vec![
            ("2026-01-01T10:01:00Z".to_string(), 1.0),
            ("2026-01-01T10:59:00Z".to_string(), 3.0),
            ("2026-01-01T11:00:00Z".to_string(), 2.0),
        ];
        let now = with_now(Window::Day, &s, 7.0);
        assert_eq!(now.last().unwrap().1, 7.0);
        assert_eq!(now.len(), 3);
        assert_eq!(
            last_per_bucket(Window::Day, &s),
            vec![
                ("2026-01-01T10".to_string(), 3.0),
                ("2026-01-01T11".to_string(), 2.0)
            ]
        );
    }
}
