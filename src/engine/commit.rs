//! Committing a batch whose units' jobs ran in parallel (see `pipeline`): in file order,
//! each unit gets its status (with the duplicate check against the ledger's keys), its lines
//! their outcomes, and its records a place in the batch's staged chunk — written before
//! the one ledger transaction that records all of it and moves the resume mark.

use super::decide;
use super::identity::{self, Identity};
use super::read::tag_of;
use super::{io_err, Engine, Result};
use crate::format::UnitStatus;
use crate::ledger::{BatchTx, ChunkMarks, Counts, FileRow, LineRow, UnitRow};
use crate::sink::{FileTag, OutRecord, Sink, Staged};
use crate::unit::{cap_raw, Evaluation, LineVerdict, Position, Reason, Unit};

/// Where reading of a file stands between batches.
pub(super) struct BatchState {
    pub file_id: i64,
    /// Set on a forced re-apply: versions earlier attempts of this content applied are
    /// applied again.
    pub force_fp: Option<String>,
    pub committed_seq: u64,
    pub ordinal: u64,
    chunk: u64,
    /// Every chunk numbered below this was on disk when the file was taken up (the
    /// chunks after the ledger's synced mark were confirmed: see `syncer`).
    synced_from: i64,
    pub format_name: String,
    pub tag: FileTag,
    /// Identity rules the file's format sets instead of the entities' defaults.
    pub identity: Vec<(crate::canonical::Entity, crate::canonical::Identity)>,
    /// The reader's handle that answers units as they commit, if it has one.
    pub answering: Option<Box<dyn crate::format::Answering>>,
}

impl BatchState {
    /// The identity rule of an entity for this file.
    pub fn identity_of(&self, e: crate::canonical::Entity) -> crate::canonical::Identity {
        self.identity
            .iter()
            .find(|(x, _)| *x == e)
            .map_or_else(|| e.identity(), |(_, i)| *i)
    }

    /// The file the batch's records come from, as the outbox names it.
    pub fn origin(&self) -> crate::sink::Origin<'_> {
        crate::sink::Origin {
            tag: &self.tag,
            format: &self.format_name,
        }
    }

    pub fn new(row: &FileRow, format: &dyn crate::format::Format) -> Self {
        BatchState {
            file_id: row.id,
            force_fp: row.forced.then(|| row.fingerprint.clone()),
            committed_seq: row.committed_seq as u64,
            ordinal: row.committed_lines as u64,
            chunk: row.next_chunk as u64,
            synced_from: row.next_chunk,
            format_name: format.name().to_string(),
            tag: tag_of(row),
            identity: format.identity_overrides(),
            answering: None,
        }
    }
}

/// What one batch adds to the ledger.
#[derive(Default)]
struct BatchRows {
    lines: Vec<LineRow>,
    units: Vec<UnitRow>,
    records: Vec<OutRecord>,
    counts: Counts,
    hold: Option<String>,
}

impl Engine {
    /// Dedupes, stages and commits an evaluated batch in file order.
    pub(super) fn commit_batch(
        &mut self,
        st: &mut BatchState,
        mut units: Vec<Unit>,
        evals: Vec<Evaluation>,
        mark: Option<crate::format::Mark>,
    ) -> Result<()> {
        let first_seq = st.committed_seq as i64;
        let tx = self.ledger.batch(st.file_id)?;
        let mut rows = BatchRows {
            records: Vec::with_capacity(evals.iter().map(|e| e.records.len()).sum()),
            units: Vec::with_capacity(units.len()),
            ..Default::default()
        };
        let mut last_seq = st.committed_seq;
        tx.prefetch_versions(evals.iter().flat_map(|e| {
            e.records
                .iter()
                .map(|r| (r.entity.as_str(), r.key.as_str()))
        }))?;
        tx.prefetch_holders(
            evals
                .iter()
                .flat_map(|e| e.claims.iter().map(|c| ("claim", c.as_str()))),
        )?;
        for (unit, eval) in units.iter_mut().zip(evals) {
            last_seq = unit.seq + 1;
            add_unit(&tx, st, unit, eval, &mut rows)?;
        }
        // Staged before the commit, synced beside the next batches: the ledger never names
        // a chunk that is not in place, and knows which may not have reached the disk yet.
        let staged = match rows.records.is_empty() {
            true => Staged::default(),
            false => self
                .outbox
                .stage(st.origin(), st.chunk, &rows.records)
                .map_err(io_err("staging outbox records"))?,
        };
        let mut chunks = staged.rows;
        self.syncer
            .submit(st.file_id, st.chunk as i64, staged.files, staged.dir);
        for c in &mut chunks {
            c.units = Some((first_seq, last_seq as i64));
        }
        tx.write_lines(st.file_id, &rows.lines)?;
        tx.write_units(st.file_id, &rows.units, &rows.lines)?;
        tx.write_chunks(st.file_id, &chunks)?;
        // A mark is where the unit after this batch starts; any other is not this batch's.
        if let Some(m) = mark.filter(|m| m.seq == last_seq) {
            tx.set_mark(st.file_id, &m)?;
        }
        if let Some(reason) = &rows.hold {
            tx.request_hold(st.file_id, reason)?;
        }
        st.chunk += 1;
        let synced = self
            .syncer
            .synced(st.file_id, st.synced_from, st.chunk as i64)
            .map_err(io_err("syncing outbox records"))?;
        let marks = ChunkMarks {
            next: st.chunk as i64,
            synced,
        };
        tx.advance(
            st.file_id,
            last_seq as i64,
            st.ordinal as i64,
            marks,
            &rows.counts,
        )?;
        tx.commit()?;
        st.committed_seq = last_seq;
        // Freeing a batch (every line's text and position, built on the reading thread)
        // was a tenth of this thread's time: the pool does it while the next batch commits
        // (on one core, that would be a second core busy: see `pipeline`).
        if !self.inline {
            self.pool.spawn(move || drop((units, rows)));
        }
        self.answer_committed(st)
    }

    /// Hands the outcomes of the units committed so far to the reader's answering (see
    /// `format::Answering`); a ledger read that failed fails the file, as it would at
    /// its end.
    fn answer_committed(&self, st: &mut BatchState) -> Result<()> {
        if let Some(answering) = st.answering.as_mut() {
            let outcomes = crate::ledger::LedgerOutcomes::new(&self.ledger, st.file_id);
            answering.committed(&outcomes, st.committed_seq);
            if let Some(e) = outcomes.failure() {
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Decides one unit and adds its line, unit and record rows to the batch.
fn add_unit(
    tx: &BatchTx,
    st: &mut BatchState,
    unit: &mut Unit,
    mut eval: Evaluation,
    rows: &mut BatchRows,
) -> Result<()> {
    let first_ordinal = st.ordinal as i64;
    let first_pos = match unit.lines.is_empty() {
        true => Position::default(),
        false => unit.shown_pos(0).into_owned(),
    };
    let mut facts = decide::unit_facts(&eval, unit.lines.len());
    let mut verdicts = std::mem::take(&mut eval.verdicts);
    verdicts.resize(unit.lines.len(), LineVerdict::Ok);
    let unit_key = unit_key(&eval);
    let mut reasons = unit_reasons(unit, &verdicts, &eval.unit_errors, &first_pos);
    let mut apply = Vec::new();
    if !facts.rejected && !facts.all_skipped {
        let found = identity::check(tx, st, unit.seq, &eval)?;
        apply = take_identity(found, &mut eval, &mut facts, &mut reasons, &first_pos)?;
    }
    let status = decide::unit_status(facts);
    let lines = UnitLines {
        status,
        verdicts: &verdicts,
        unit_errors: &eval.unit_errors,
        headline: reasons.first().map(|(_, r)| r),
        key: &unit_key,
    };
    add_line_rows(st, unit, lines, rows);
    rows.counts.add_unit(status);
    if matches!(status, UnitStatus::Applied | UnitStatus::Unmapped) {
        identity::apply(
            tx,
            st,
            unit.seq,
            &mut eval,
            &apply,
            &first_pos,
            &mut rows.records,
        )?;
        if let Some(h) = eval.hold.take() {
            rows.hold.get_or_insert(h);
        }
    }
    rows.units.push(UnitRow {
        seq: unit.seq as i64,
        // Taken: the unit is only freed after this.
        label: std::mem::take(&mut unit.label),
        status,
        key: unit_key,
        first_ordinal,
        line_count: unit.lines.len() as i64,
        spans: crate::ledger::spans::encode(&unit.lines.iter().map(|l| &l.pos).collect::<Vec<_>>()),
        pos: first_pos,
        reasons,
        detail: eval.detail,
        tolerated: eval.tolerated,
    });
    Ok(())
}

/// A unit's reasons: its line rejections with their positions, then its unit errors at
/// its first line.
#[inline]
fn unit_reasons(
    unit: &Unit,
    verdicts: &[LineVerdict],
    unit_errors: &[Reason],
    first_pos: &Position,
) -> Vec<(Position, Reason)> {
    let mut reasons: Vec<(Position, Reason)> = Vec::new();
    for (i, v) in verdicts.iter().enumerate() {
        if let LineVerdict::Rejected(r) = v {
            reasons.push((located(&unit.shown_pos(i), r), (**r).clone()));
        }
    }
    for r in unit_errors {
        reasons.push((located(first_pos, r), r.clone()));
    }
    reasons
}

/// What the ledger's identity check found for a unit that may apply, taken into its facts
/// and reasons; the verdicts of its records that apply.
#[inline]
fn take_identity(
    found: Identity,
    eval: &mut Evaluation,
    facts: &mut decide::UnitFacts,
    reasons: &mut Vec<(Position, Reason)>,
    first_pos: &Position,
) -> Result<Vec<crate::records::Verdict>> {
    match found {
        Identity::Duplicate(r) => {
            reasons.push((first_pos.clone(), r));
            facts.duplicate = true;
        }
        Identity::Unchanged => facts.unchanged = true,
        Identity::Conflict(r) => {
            reasons.push((first_pos.clone(), r.clone()));
            eval.unit_errors.insert(0, r);
            facts.rejected = true;
        }
        Identity::Apply(verdicts) => return Ok(verdicts),
        Identity::Wait(why) => return Err(super::EngineError::Waiting(why)),
    }
    Ok(Vec::new())
}

/// What a unit's lines are told by: its status, each line's verdict, its unit errors, its
/// headline reason and its key.
struct UnitLines<'a> {
    status: UnitStatus,
    verdicts: &'a [LineVerdict],
    unit_errors: &'a [Reason],
    headline: Option<&'a Reason>,
    key: &'a Option<String>,
}

/// Counts a unit's lines and adds a row for each one that does not end as its unit does
/// (those are told by the unit's row: see the ledger's spans).
#[inline]
fn add_line_rows(st: &mut BatchState, unit: &Unit, u: UnitLines<'_>, rows: &mut BatchRows) {
    let mut unit_errors = u.unit_errors.iter().cloned();
    for (i, verdict) in u.verdicts.iter().enumerate() {
        let (status_str, reason) = decide::line_status(
            u.status,
            verdict,
            || unit_errors.next(),
            u.headline,
            &unit.label,
        );
        rows.counts.add_line(status_str);
        if !matches!(status_str, "rejected" | "skipped") {
            st.ordinal += 1;
            continue;
        }
        let line = unit.shown(i);
        rows.lines.push(LineRow {
            ordinal: st.ordinal as i64,
            unit_seq: unit.seq as i64,
            pos: match &reason {
                Some(r) => located(&line.pos, r),
                None => line.pos.clone(),
            },
            status: status_str,
            key: u.key.clone(),
            raw: (status_str == "rejected").then(|| cap_raw(&line.raw, 4096)),
            reason,
        });
        st.ordinal += 1;
    }
}

/// The business key a reviewer looks for: the records' keys, else the key the input
/// states for the document (known even when it is rejected).
fn unit_key(eval: &Evaluation) -> Option<String> {
    match eval.records.as_slice() {
        [] => eval.key.clone(),
        [one] => Some(one.key.clone()),
        many => Some(
            many.iter()
                .map(|r| r.key.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

/// The line's position, refined by what the reason knows better: a spreadsheet cell as
/// the locator, a field's own line and byte inside a multi-line segment.
fn located(pos: &Position, reason: &Reason) -> Position {
    let mut p = match &reason.locator {
        Some(l) => pos.clone().with_locator(l.clone()),
        None => pos.clone(),
    };
    if let Some((line, byte)) = reason.place {
        p.line = line;
        p.byte = byte;
    }
    p
}
