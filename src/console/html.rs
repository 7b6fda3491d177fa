//! The console's look: one layout with the navigation, the style sheet (screen and print),
//! and the small pieces every page uses — badges, the CSRF field, URL encoding, figures
//! and times as people read them, and a rejected line with its offending value marked.
//! Every value goes through maud's escaping; file names also through `display::name`, so
//! control characters show as escapes rather than acting on the page.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::auth::Sess;

/// The pages in the navigation, by path.
const NAV: [(&str, &str); 5] = [
    ("/", "Dashboard"),
    ("/files", "Files"),
    ("/exceptions", "Exceptions"),
    ("/records", "Records"),
    ("/audit", "Audit"),
];

/// A whole page: `active` is the navigation entry it belongs to.
pub fn page(title: &str, sess: &Sess, active: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tallyman" }
                link rel="stylesheet" href="/static/console.css";
            }
            body {
                header.top {
                    span.brand { "tallyman" }
                    nav {
                        @for (href, label) in NAV {
                            a href=(href) class=[(href == active).then_some("on")] { (label) }
                        }
                    }
                    span.who {
                        "signed in as " strong { (sess.actor) }
                        form.inline method="post" action="/logout" {
                            (csrf(sess))
                            button.link type="submit" { "log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(doc.into_string()).into_response()
}

/// A bare page (login, errors): no navigation.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · tallyman" }
                link rel="stylesheet" href="/static/console.css";
            }
            body { main.narrow { h1 { (title) } (body) } }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Html<String> {
    let title = status.canonical_reason().unwrap_or("Error");
    Html(
        bare(
            title,
            html! {
                p.error { (message) }
                p { a href="/" { "Back to the dashboard" } }
            },
        )
        .into_string(),
    )
}

/// The hidden field every POST form carries.
pub fn csrf(sess: &Sess) -> Markup {
    html! { input type="hidden" name="csrf" value=(sess.csrf); }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    crate::display::url_component(s)
}

/// A file name as shown: escaped control characters.
pub fn name(s: &str) -> String {
    crate::display::name(s).into_owned()
}

/// A status as a coloured word.
pub fn badge(word: &str) -> Markup {
    let class = match word {
        "applied" | "delivered" | "ok" | "resolved" | "corrected" | "unchanged" => "good",
        "applied_with_rejects"
        | "held"
        | "retry"
        | "pending"
        | "in_flight"
        | "in_progress"
        | "running"
        | "duplicate"
        | "accepted_unmapped"
        | "interrupted"
        | "waiting" => "warn",
        "rejected" | "failed" | "dead" | "returned" | "blocked" | "gone" => "bad",
        _ => "plain",
    };
    html! { span class={ "badge " (class) } { (word.replace('_', " ")) } }
}

/// An ISO time as `2026-01-01 10:00:05` (UTC).
pub fn when(iso: &str) -> String {
    iso.get(..19).unwrap_or(iso).replace('T', " ")
}

/// Seconds as people say them: `850 ms`, `12.5 s`, `4 min`, `3.2 h`.
pub fn duration(secs: f64) -> String {
    match secs {
        s if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        s if s < 120.0 => format!("{s:.1} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// A ratio as a percentage with enough digits to compare against 0.1%.
pub fn percent(r: f64) -> String {
    match r * 100.0 {
        0.0 => "0%".into(),
        p if p < 1.0 => format!("{p:.3}%"),
        p => format!("{p:.1}%"),
    }
}

/// Where a line's original value sits: the first occurrence of `value` standing as a whole
/// field (between separators), else anywhere.
pub fn find_value(raw: &str, value: &str) -> Option<(usize, usize)> {
    if value.is_empty() {
        return None;
    }
    let sep = |c: Option<char>| c.is_none_or(|c| ",;\t|*~:^\"'".contains(c));
    let mut fallback = None;
    for (i, _) in raw.match_indices(value) {
        let end = i + value.len();
        if sep(raw[..i].chars().next_back()) && sep(raw[end..].chars().next()) {
            return Some((i, end));
        }
        fallback.get_or_insert((i, end));
    }
    fallback
}

/// A rejected line's original text with the offending value marked.
pub fn marked_line(raw: &str, value: Option<&str>) -> Markup {
    let shown = crate::display::name(raw);
    match value.and_then(|v| find_value(&shown, v)) {
        Some((a, b)) => html! {
            code.raw { (&shown[..a]) mark { (&shown[a..b]) } (&shown[b..]) }
        },
        None => html! { code.raw { (shown) } },
    }
}

/// A link to a line on its file's page.
pub fn line_href(file_id: i64, ordinal: i64) -> String {
    let from = ordinal - ordinal.rem_euclid(super::files::LINES_PER_PAGE);
    format!("/files/{file_id}?from={from}#l{ordinal}")
}

pub fn record_href(entity: &str, key: &str) -> String {
    format!("/records?entity={}&key={}", enc(entity), enc(key))
}

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

/// Plain, dense, readable; charts keep their colours in print, navigation and forms go.
const CSS: &str = r#"
:root { --fg:#1d2330; --muted:#5b6473; --line:#d9dde3; --bg:#f6f7f9; --good:#1c7c3a; --warn:#a05a00; --bad:#b3261e; --accent:#2450a6; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header.top { display:flex; gap:1.5rem; align-items:center; padding:.5rem 1rem; background:#1d2330; color:#fff; }
header.top a { color:#dfe6f3; text-decoration:none; margin-right:1rem; }
header.top a.on { color:#fff; font-weight:600; border-bottom:2px solid #8fb0ff; }
.brand { font-weight:700; letter-spacing:.02em; }
.who { margin-left:auto; font-size:.9em; color:#c8cfdb; }
main { padding:1rem 1.5rem 3rem; max-width:1400px; }
main.narrow { max-width:520px; margin:3rem auto; background:#fff; border:1px solid var(--line); border-radius:6px; }
h1 { font-size:1.4rem; margin:.2rem 0 1rem; } h2 { font-size:1.1rem; margin:1.6rem 0 .5rem; }
a { color:var(--accent); }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); margin:.3rem 0 1rem; }
th, td { padding:.3rem .5rem; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#eef1f5; font-weight:600; font-size:.9em; }
td.pos { white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.rejected td { background:#fff6f5; }
.badge { display:inline-block; padding:0 .45em; border-radius:3px; font-size:.85em; border:1px solid; white-space:nowrap; }
.badge.good { color:var(--good); } .badge.warn { color:var(--warn); } .badge.bad { color:var(--bad); } .badge.plain { color:var(--muted); }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(300px, 1fr)); gap:1rem; }
.card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.8rem 1rem; break-inside:avoid; }
.card h3 { margin:0; font-size:.95rem; color:var(--muted); font-weight:600; }
.card .fig { font-size:1.9rem; font-weight:650; margin:.2rem 0; }
.card .sub { color:var(--muted); font-size:.9em; }
.card.bad { border-left:5px solid var(--bad); } .card.good { border-left:5px solid var(--good); } .card.warn { border-left:5px solid var(--warn); }
svg.chart { width:100%; height:70px; display:block; margin-top:.4rem; }
svg.chart .bar { fill:#5b7fc7; } svg.chart .bar.over { fill:var(--bad); } svg.chart .goal { stroke:var(--bad); stroke-dasharray:3 2; stroke-width:1; }
svg.chart .axis { stroke:var(--line); } svg.chart text { font-size:8px; fill:var(--muted); }
code.raw { white-space:pre-wrap; word-break:break-all; font:12px/1.4 ui-monospace, Menlo, Consolas, monospace; }
pre { background:#fff; border:1px solid var(--line); padding:.5rem; overflow:auto; font-size:12px; max-height:24rem; }
mark { background:#ffd54f; outline:1px solid #b58900; }
.error { color:var(--bad); font-weight:600; } .muted { color:var(--muted); } .ok { color:var(--good); }
.note { background:#fff; border:1px solid var(--line); border-left:4px solid var(--accent); padding:.6rem .9rem; margin:.8rem 0; }
.note.bad { border-left-color:var(--bad); } .note.good { border-left-color:var(--good); }
form.inline { display:inline; margin:0; }
form.box { background:#fff; border:1px solid var(--line); padding:.6rem .8rem; margin:.5rem 0; border-radius:4px; }
input[type=text], input[type=password], select { padding:.3rem .4rem; border:1px solid #b8bfca; border-radius:3px; min-width:16rem; }
button { padding:.3rem .8rem; border:1px solid var(--accent); background:var(--accent); color:#fff; border-radius:3px; cursor:pointer; }
button.secondary { background:#fff; color:var(--accent); } button.danger { background:var(--bad); border-color:var(--bad); }
button.link { background:none; border:none; color:#dfe6f3; text-decoration:underline; padding:0 0 0 .5rem; }
.tabs a { margin-right:.8rem; } .tabs a.on { font-weight:700; text-decoration:none; color:var(--fg); }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:.2rem 1rem; background:#fff; border:1px solid var(--line); padding:.6rem .9rem; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; word-break:break-all; }
@media print {
  header.top, form, button, .noprint { display:none !important; }
  body { background:#fff; font-size:11px; } main { padding:0; max-width:none; }
  .card, table { border-color:#999; } a { color:inherit; text-decoration:none; }
  svg.chart .bar { fill:#555; } * { -webkit-print-color-adjust:exact; print-color-adjust:exact; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offending_value_is_found_as_a_whole_field_first() {
        let raw = "PO-1,2,-1,19.99,-1x";
        assert_eq!(find_value(raw, "-1"), Some((7, 9)));
        assert_eq!(find_value("BIG*20241131*INV", "20241131"), Some((4, 12)));
        assert_eq!(
            find_value("abc", "b"),
            Some((1, 2)),
            "anywhere as a last resort"
        );
        assert_eq!(find_value("abc", ""), None);
    }

    #[test]
    fn values_from_the_ledger_are_escaped() {
        let m = marked_line("<script>alert(1)</script>,x\n", Some("x"));
        let s = m.into_string();
        assert!(s.contains("&lt;script&gt;"), "{s}");
        assert!(s.contains("<mark>x</mark>"), "{s}");
        assert!(s.contains("\\n"), "a newline shows as an escape: {s}");
        assert_eq!(enc("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn figures_read_as_people_say_them() {
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(12.54), "12.5 s");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(percent(0.0005), "0.050%");
        assert_eq!(percent(0.25), "25.0%");
        assert_eq!(when("2026-01-01T10:00:05.123Z"), "2026-01-01 10:00:05");
    }
}
