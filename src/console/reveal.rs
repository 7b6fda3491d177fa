//! Revealing what the console shows masked — an explicit action, always written to the
//! audit trail before the value is shown. The ledger keeps only masked copies of rejected
//! lines, so a line's original comes from the archived input at the line's byte range; a
//! delivered record's original is the version's data (what the target was sent).

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::extract::{Path, State};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::app::{with_ledger, Act, AppError, AppState, Csrf, Page};
use super::html::{line_href, name, record_href};
use crate::canonical::Entity;
use crate::ledger::LineSource;

/// A line longer than this is shown cut (the ledger caps its copies the same way).
const MAX_LINE: u64 = 64 << 10;

#[derive(Deserialize)]
pub struct LineForm {
    #[serde(default)]
    csrf: String,
    ordinal: i64,
    reason: Option<String>,
}

impl Csrf for LineForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The line's bytes from the archived input, as text.
fn read_line(src: &LineSource) -> Result<String, AppError> {
    let path = src
        .path
        .as_deref()
        .ok_or_else(|| AppError::not_found("archived input"))?;
    let mut f = std::fs::File::open(path).map_err(|e| {
        AppError::new(
            axum::http::StatusCode::GONE,
            format!("the input is no longer at {}: {e}", name(path)),
        )
    })?;
    f.seek(SeekFrom::Start(src.byte as u64))
        .map_err(anyhow::Error::from)?;
    let len = src
        .end
        .map_or(MAX_LINE, |e| ((e - src.byte).max(0) as u64).min(MAX_LINE));
    let mut buf = Vec::new();
    f.take(len)
        .read_to_end(&mut buf)
        .map_err(anyhow::Error::from)?;
    if src.end.is_none() {
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(nl);
        }
    }
    Ok(String::from_utf8_lossy(&buf)
        .trim_end_matches(['\r', '\n'])
        .to_string())
}

pub async fn line(
    State(st): State<Arc<AppState>>,
    Path(id): Path<i64>,
    Act(sess, f): Act<LineForm>,
) -> Page {
    let actor = sess.actor.clone();
    let shown = with_ledger(&st, move |l, _| {
        let file = l.file_opt(id)?.ok_or_else(|| AppError::not_found("file"))?;
        let src = l
            .line_source(id, f.ordinal)?
            .ok_or_else(|| AppError::not_found("line"))?;
        if !src.has_byte {
            return Ok(None);
        }
        let text = read_line(&src)?;
        let line = l
            .file_lines(id, f.ordinal, 1, false)?
            .first()
            .map_or(0, |x| x.line);
        let reason = f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        l.audit(
            &actor,
            "reveal",
            reason,
            Some(&format!("{} line {line}", file.name)),
            &json!({"file": id, "ordinal": f.ordinal, "line": line}),
        )?;
        Ok(Some((file.name, line, text)))
    })
    .await?;
    let body = match shown {
        None => html! {
            p.note { "A spreadsheet row has no byte range in its file: open the archived workbook to see it. Nothing was revealed." }
            p { a href=(line_href(id, f.ordinal)) { "Back to the line" } }
        },
        Some((file, line, text)) => html! {
            p.note.bad { "Line " (line) " of " (name(&file)) " as received, masked values included. This reveal is recorded in the audit trail under your name." }
            pre { (name(&text)) }
            p { a href=(line_href(id, f.ordinal)) { "Back to the line" } }
        },
    };
    Ok(super::html::page("Original line", &sess, "/files", body))
}

#[derive(Deserialize)]
pub struct VersionForm {
    #[serde(default)]
    csrf: String,
    entity: String,
    key: String,
    version: i64,
    reason: Option<String>,
}

impl Csrf for VersionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn version(State(st): State<Arc<AppState>>, Act(sess, f): Act<VersionForm>) -> Page {
    let actor = sess.actor.clone();
    let (entity, key) = (f.entity.clone(), f.key.clone());
    let data = with_ledger(&st, move |l, _| {
        let v = l
            .key_versions(Some(&f.entity), &f.key)?
            .into_iter()
            .find(|v| v.version == f.version)
            .ok_or_else(|| AppError::not_found("version"))?;
        let data = v
            .data
            .ok_or_else(|| AppError::not_found("data of this version"))?;
        let fields: Vec<&str> = Entity::parse(&f.entity)
            .map_or(&[][..], |e| e.sensitive_fields())
            .iter()
            .copied()
            .filter(|s| data.get(*s).is_some_and(|x| !x.is_null()))
            .collect();
        let reason = f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        let subject = format!("{} {} v{}", f.entity, f.key, f.version);
        l.audit(
            &actor,
            "reveal",
            reason,
            Some(&subject),
            &json!({"entity": f.entity, "key": f.key, "version": f.version, "fields": fields}),
        )?;
        Ok(data)
    })
    .await?;
    let body = html! {
        p.note.bad { "The record as sent to the targets, sensitive fields unmasked. This reveal is recorded in the audit trail under your name." }
        pre { (serde_json::to_string_pretty(&data).unwrap_or_default()) }
        p { a href=(record_href(&entity, &key)) { "Back to the history" } }
    };
    Ok(super::html::page(
        &format!("{entity} {key}"),
        &sess,
        "/records",
        body,
    ))
}
