//! Acknowledgements: a 997 (inbound 004010 family and older) or 999 (inbound 005010 family)
//! per functional group, and a TA1 when the interchange envelope is bad or ISA14 asks for
//! one.
//!
//! The AK3/AK4 (IK3/IK4) codes come from the set jobs' `detail` as the ledger recorded it,
//! so the ack states exactly what the reject report states; the set status comes from the
//! recorded outcome, so a set the pipeline rejected for any reason (including the whole file
//! being rejected) is never acknowledged as accepted. Sender and receiver are swapped and
//! the control numbers are ours, drawn from the ledger-backed [`AckContext`].

use crate::format::{AckContext, FileError, Outbound, UnitOutcomes, UnitStatus};

use super::Interchange;

/// Strips delimiters and control characters from a value echoed back to the partner.
fn clean(v: &str, max: usize) -> String {
    v.chars()
        .filter(|c| !matches!(c, '*' | '~' | ':' | '^') && !c.is_control())
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

fn seg_id(v: &str) -> String {
    let id: String = v
        .chars()
        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        .take(3)
        .collect();
    if id.len() < 2 {
        "ZZZ".into()
    } else {
        id
    }
}

fn pad(v: &str, n: usize) -> String {
    let v = clean(v, n);
    format!("{v:<n$}")
}

fn codes(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|c| c.as_u64()).collect())
        .unwrap_or_default()
}

/// Builds the acknowledgement interchange for one inbound interchange, if one is due.
pub(crate) fn acknowledge(
    ic: &Interchange,
    outcomes: &dyn UnitOutcomes,
    acks: &mut dyn AckContext,
    error: Option<&FileError>,
) -> Result<Option<Outbound>, FileError> {
    let file_failed = error.is_some();
    let env_code = ic
        .header_error
        .as_ref()
        .map(|(c, _)| *c)
        .or(ic.trailer_error);
    let want_ta1 = ic.isa.ack_requested || ic.isa.partner.always_ta1 || env_code.is_some();
    if !want_ta1 && ic.groups.is_empty() {
        return Ok(None);
    }
    let partner = if ic.isa.sender.is_empty() {
        "unknown".to_string()
    } else {
        clean(&ic.isa.sender, 15)
    };
    let five = ic.isa.version.as_str() >= "00501";
    let ctl = acks.next_control_number(&partner, "ISA")? % 1_000_000_000;
    let now = chrono::Utc::now();
    let mut segs: Vec<String> = Vec::new();
    segs.push(format!(
        "ISA*00*          *00*          *{}*{}*{}*{}*{}*{}*{}*{}*{ctl:09}*0*{}*:",
        pad(&ic.isa.receiver_q, 2),
        pad(&ic.isa.receiver, 15),
        pad(&ic.isa.sender_q, 2),
        pad(&ic.isa.sender, 15),
        now.format("%y%m%d"),
        now.format("%H%M"),
        if five { "^" } else { "U" },
        if five { "00501" } else { "00401" },
        if ic.isa.usage == "T" { "T" } else { "P" },
    ));
    // pyx12's interchange map (the validator the acks are checked with) expects the TA1
    // after the functional groups, which is also where pyx12 itself writes it.
    let mut ta1 = None;
    if want_ta1 {
        let (status, code) = match env_code {
            Some(c) => ("R", c),
            None if file_failed => ("R", "024"),
            None => ("A", "000"),
        };
        ta1 = Some(format!(
            "TA1*{}*{}*{}*{status}*{code}",
            pad(&ic.isa.control, 9),
            pad(&ic.isa.date, 6),
            pad(&ic.isa.time, 4),
        ));
    }
    let mut kinds: Vec<&str> = Vec::new();
    let mut groups = 0u64;
    // The envelope error belongs to the interchange that was open when reading stopped.
    let failing_here = ic.trailer_error.is_some();
    for (gi, g) in ic.groups.iter().enumerate() {
        let is_999 = g.gs08.starts_with("005");
        let kind = if is_999 { "999" } else { "997" };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
        let gs_ctl = acks.next_control_number(&partner, "GS")? % 1_000_000_000;
        groups += 1;
        let version = if is_999 { "005010X231A1" } else { "004010" };
        let mut body: Vec<String> = Vec::new();
        body.push(format!(
            "ST*{kind}*0001{}",
            if is_999 { "*005010X231A1" } else { "" }
        ));
        body.push(if is_999 {
            format!(
                "AK1*{}*{}*{}",
                seg_id(&g.gs01),
                clean(&g.gs06, 9),
                clean(&g.gs08, 12)
            )
        } else {
            format!("AK1*{}*{}", seg_id(&g.gs01), clean(&g.gs06, 9))
        });
        let mut accepted = 0u64;
        let mut received = 0u64;
        for set in &g.sets {
            received += 1;
            let summary = outcomes.get(set.seq);
            let ok = !file_failed
                && summary.as_ref().is_some_and(|s| {
                    matches!(
                        s.status,
                        UnitStatus::Applied
                            | UnitStatus::Duplicate
                            | UnitStatus::Skipped
                            | UnitStatus::Unmapped
                    )
                });
            let detail = summary
                .map(|s| match set.part {
                    Some(i) => s.detail["parts"][i].clone(),
                    None => s.detail,
                })
                .unwrap_or_default();
            body.push(format!("AK2*{}*{}", seg_id(&set.st01), clean(&set.st02, 9)));
            if let Some(issues) = detail["ak3"].as_array() {
                // Several element errors of one segment share one AK3.
                let mut last: Option<(String, u64, u64)> = None;
                for i in issues {
                    let pos = i["pos"].as_u64().unwrap_or(1).max(1);
                    let code = i["code"].as_u64().unwrap_or(8);
                    let sid = seg_id(i["seg"].as_str().unwrap_or(""));
                    let key = (sid.clone(), pos, code);
                    if code != 8 || last.as_ref() != Some(&key) {
                        body.push(format!(
                            "{}*{sid}*{pos}**{code}",
                            if is_999 { "IK3" } else { "AK3" }
                        ));
                    }
                    last = Some(key);
                    if let Some(e) = i["element"].as_object() {
                        let epos = e
                            .get("pos")
                            .and_then(|v| v.as_u64())
                            .unwrap_or(1)
                            .clamp(1, 99);
                        let ecode = e.get("code").and_then(|v| v.as_u64()).unwrap_or(6);
                        let value =
                            clean(e.get("value").and_then(|v| v.as_str()).unwrap_or(""), 99);
                        let tail = if value.is_empty() {
                            String::new()
                        } else {
                            format!("*{value}")
                        };
                        body.push(format!(
                            "{}*{epos}**{ecode}{tail}",
                            if is_999 { "IK4" } else { "AK4" }
                        ));
                    }
                }
            }
            let mut ak5 = codes(&detail["ak5"]);
            ak5.truncate(5);
            if ok {
                accepted += 1;
                body.push(format!("{}*A", if is_999 { "IK5" } else { "AK5" }));
            } else {
                let tail: String = ak5.iter().map(|c| format!("*{c}")).collect();
                body.push(format!("{}*R{tail}", if is_999 { "IK5" } else { "AK5" }));
            }
        }
        if let Some((st01, st02)) = &g.open_set {
            received += 1;
            body.push(format!("AK2*{}*{}", seg_id(st01), clean(st02, 9)));
            body.push(format!("{}*R*2", if is_999 { "IK5" } else { "AK5" }));
        }
        let mut ak9_codes: Vec<u8> = Vec::new();
        if g.header_error.is_some() {
            ak9_codes.push(6);
        }
        let last = gi + 1 == ic.groups.len();
        if !g.closed && failing_here && last {
            let rule = error.map(|e| e.reason.rule.as_str()).unwrap_or("");
            ak9_codes.push(match rule {
                "x12-ge01-count" => 5,
                "x12-ge02-control" => 4,
                _ => 3,
            });
        }
        let included = g
            .declared_sets
            .as_deref()
            .and_then(|d| d.parse::<u64>().ok())
            .unwrap_or(received);
        let status = if accepted == received && ak9_codes.is_empty() && !file_failed {
            "A"
        } else if accepted == 0 || file_failed || !ak9_codes.is_empty() {
            "R"
        } else {
            "P"
        };
        let tail: String = ak9_codes.iter().map(|c| format!("*{c}")).collect();
        body.push(format!(
            "AK9*{status}*{included}*{received}*{accepted}{tail}"
        ));
        let n = body.len() + 1;
        body.push(format!("SE*{n}*0001"));
        segs.push(format!(
            "GS*FA*{}*{}*{}*{}*{gs_ctl}*X*{version}",
            clean(&g.gs03, 15),
            clean(&g.gs02, 15),
            now.format("%Y%m%d"),
            now.format("%H%M"),
        ));
        segs.extend(body);
        segs.push(format!("GE*1*{gs_ctl}"));
    }
    segs.extend(ta1);
    segs.push(format!("IEA*{groups}*{ctl:09}"));
    let kind = kinds.first().copied().unwrap_or("TA1").to_string();
    let mut content = String::new();
    for s in &segs {
        content.push_str(s);
        content.push_str("~\n");
    }
    Ok(Some(Outbound {
        file_name: format!(
            "{}-{kind}-{ctl:09}.x12",
            partner
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        ),
        kind,
        partner,
        control_no: Some(ctl),
        content: content.into_bytes(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_values_lose_delimiters() {
        assert_eq!(clean("a*b~c:d^e\n", 99), "abcde");
        assert_eq!(seg_id("n1"), "ZZZ");
        assert_eq!(seg_id("N1"), "N1");
        assert_eq!(pad("ab", 4), "ab  ");
    }
}
