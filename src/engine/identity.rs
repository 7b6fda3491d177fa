//! The commit stage's identity checks against the ledger: a unit whose claims another file
//! already took is a duplicate; otherwise each of its records is weighed against its key's
//! current version (`records::classify`), and the unit becomes a duplicate, unchanged, a
//! key conflict held for a person, or applied — new records and new versions of master
//! data only, each stored as a version with its data so targets can be sent it.

use super::commit::BatchState;
use super::Result;
use crate::canonical::Record;
use crate::ledger::{BatchTx, NewVersion};
use crate::records::{self, Incoming, Verdict};
use crate::sink::{OutRecord, SourceRef};
use crate::unit::{Evaluation, Position, Reason};

/// What the ledger says about a unit that passed its own validation.
pub(super) enum Identity {
    /// Its claims, or all its create-once records, were applied before.
    Duplicate(Reason),
    /// All its records are master data identical to what was applied.
    Unchanged,
    /// A key it uses was applied with other content: a person must decide.
    Conflict(Reason),
    /// Apply it: one verdict per record (`Same` ones are skipped).
    Apply(Vec<Verdict>),
    /// A key it uses is held by another file not decided yet, which may still be rejected
    /// whole: what this unit is depends on that decision, so its file waits for it.
    Wait(String),
}

pub(super) fn check(
    tx: &BatchTx,
    st: &BatchState,
    seq: u64,
    eval: &Evaluation,
) -> Result<Identity> {
    if let Some(found) = claimed_elsewhere(tx, st, eval)? {
        return Ok(found);
    }
    let mut verdicts = Vec::with_capacity(eval.records.len());
    let mut dup_reason = None;
    for r in &eval.records {
        let current = tx.current_version(r.entity.as_str(), &r.key)?;
        if let Some(cur) = current
            .as_ref()
            .filter(|c| c.pending && c.file_id != st.file_id)
        {
            let what = format!("{} {}", r.entity, r.key);
            return Ok(Identity::Wait(waiting(&what, cur.file_id, &cur.file_name)));
        }
        let inc = Incoming {
            identity: st.identity_of(r.entity),
            hash: &r.hash,
            data: &r.json,
            file_id: st.file_id,
            unit_seq: seq as i64,
            forced_fp: st.force_fp.as_deref(),
        };
        let verdict = records::classify(&inc, current.as_ref());
        match (&verdict, &current) {
            (Verdict::Conflict(changes), Some(cur)) => {
                let cur = records::Current {
                    line: tx.unit_line(cur.file_id, cur.unit_seq)?,
                    ..cur.clone()
                };
                return Ok(Identity::Conflict(conflict(r, &cur, st, changes)));
            }
            (Verdict::Same, Some(cur)) if inc.identity == records::Identity::CreateOnce => {
                dup_reason.get_or_insert_with(|| duplicate(r, cur, st.file_id));
            }
            _ => {}
        }
        verdicts.push(verdict);
    }
    if !verdicts.is_empty() && verdicts.iter().all(|v| *v == Verdict::Same) {
        return Ok(match dup_reason {
            Some(reason) => Identity::Duplicate(reason),
            None => Identity::Unchanged,
        });
    }
    Ok(Identity::Apply(verdicts))
}

/// Why a unit waits: the other file holding its key is not decided.
fn waiting(what: &str, file_id: i64, name: &str) -> String {
    format!(
        "{what} is held by '{}' (ledger file #{file_id}), which is not decided yet: this file \
         goes on once it is (if that file is rejected, the key is this file's)",
        crate::display::name(name)
    )
}

/// A duplicate if one of the unit's claims is held by another file, or a wait if that
/// file is not decided yet.
fn claimed_elsewhere(tx: &BatchTx, st: &BatchState, eval: &Evaluation) -> Result<Option<Identity>> {
    for claim in &eval.claims {
        let Some(h) = tx.holder("claim", claim)? else {
            continue;
        };
        if h.file_id != st.file_id && h.pending {
            return Ok(Some(Identity::Wait(waiting(claim, h.file_id, &h.name))));
        }
        if h.file_id != st.file_id && st.force_fp.as_deref() != Some(h.fingerprint.as_str()) {
            let why = format!(
                "{claim} was already applied from '{}' (ledger file #{})",
                crate::display::name(&h.name),
                h.file_id
            );
            return Ok(Some(Identity::Duplicate(
                Reason::new("duplicate", why).value(claim.clone()),
            )));
        }
    }
    Ok(None)
}

fn duplicate(r: &Record, cur: &records::Current, file_id: i64) -> Reason {
    let why = if cur.file_id == file_id {
        format!(
            "{} {} appears twice in this file (first as unit {})",
            r.entity, r.key, cur.unit_seq
        )
    } else {
        format!(
            "{} {} was already applied from '{}' (ledger file #{})",
            r.entity,
            r.key,
            crate::display::name(&cur.file_name),
            cur.file_id
        )
    };
    Reason::new("duplicate", why)
        .field("key")
        .value(r.key.clone())
}

fn conflict(
    r: &Record,
    cur: &records::Current,
    st: &BatchState,
    changes: &[records::Change],
) -> Reason {
    let place = if cur.file_id == st.file_id {
        format!("earlier in this file (unit {})", cur.unit_seq)
    } else {
        format!(
            "from '{}' (ledger file #{})",
            crate::display::name(&cur.file_name),
            cur.file_id
        )
    };
    let what = if changes.is_empty() {
        format!(
            "the ledger keeps only its hash; compare with line {} of that file",
            cur.line
        )
    } else {
        records::describe(changes, |p| records::sensitive_path(r.entity, p))
    };
    let why = format!(
        "{} {} was applied {place} with other content ({what}); a {} record is never changed silently",
        r.entity,
        r.key,
        st.identity_of(r.entity).as_str()
    );
    let mut reason = Reason::new("key-conflict", why).value(r.key.clone());
    if let Some(first) = changes.first() {
        reason = reason.field(first.path.clone());
    }
    reason
}

/// Stores the unit's new records as versions, takes its claims, and moves its records
/// into the batch's staged output.
pub(super) fn apply(
    tx: &BatchTx,
    st: &BatchState,
    seq: u64,
    eval: &mut Evaluation,
    verdicts: &[Verdict],
    first_pos: &Position,
    out: &mut Vec<OutRecord>,
) -> Result<()> {
    for claim in &eval.claims {
        tx.take_key(
            "claim",
            claim,
            st.file_id,
            seq as i64,
            st.force_fp.is_some(),
        )?;
    }
    let records = std::mem::take(&mut eval.records);
    for (i, (r, verdict)) in records.into_iter().zip(verdicts).enumerate() {
        let version = match verdict {
            Verdict::New => 1,
            Verdict::NewVersion(v) => *v,
            Verdict::Same | Verdict::Conflict(_) => continue,
        };
        let source = st.source(seq, first_pos);
        tx.add_version(&NewVersion {
            entity: r.entity.as_str(),
            key: &r.key,
            version,
            hash: &r.hash,
            data: keeps_data(tx, st, r.entity).then_some(r.json.as_str()),
            file_id: st.file_id,
            unit_seq: seq as i64,
            ordinal: i as i64,
        })?;
        out.push(OutRecord::new(r, source));
    }
    Ok(())
}

/// Whether a version keeps its data in the ledger: a remote target is sent it from there,
/// and master data is compared field by field with its next version. A create-once
/// document's data is in the outbox, and only its hash is needed to know it again.
fn keeps_data(tx: &BatchTx, st: &BatchState, entity: crate::canonical::Entity) -> bool {
    tx.keeps_data(entity.as_str()) || st.identity_of(entity) == crate::canonical::Identity::Upsert
}

impl BatchState {
    fn source(&self, seq: u64, first_pos: &Position) -> SourceRef {
        SourceRef::new(seq, first_pos)
    }
}
