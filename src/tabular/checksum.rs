//! Check-digit validation a field can ask for with `checksum = "..."`.
//!
//! A regex can say an IBAN looks like an IBAN, but not that its check digits are right,
//! and a mistyped IBAN is a payment to the wrong account or a bounced one weeks later.
//! ISO 13616's mod-97 check catches every single wrong character and nearly every swap of
//! two, so a typo is rejected at the line that carries it, not discovered by the bank.

/// A check-digit scheme a field's value must pass (rule `checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// ISO 13616 IBAN in electronic form (no spaces): country, two check digits, BBAN.
    Iban,
}

impl Checksum {
    pub const NAMES: &'static [&'static str] = &["iban"];

    pub fn parse(name: &str) -> Option<Checksum> {
        match name {
            "iban" => Some(Checksum::Iban),
            _ => None,
        }
    }

    /// `Err` with a message saying what is wrong with `value` (without repeating it, so a
    /// sensitive value is not echoed).
    pub fn verify(self, value: &str) -> Result<(), String> {
        match self {
            Checksum::Iban => iban(value),
        }
    }
}

fn iban(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let shape_ok = (15..=34).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b[4..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if !shape_ok {
        return Err(
            "is not an IBAN: 15 to 34 characters, country code, two check digits, then \
             capital letters and digits, without spaces"
                .into(),
        );
    }
    if mod97(&b[4..], &b[..4]) != 1 {
        return Err("is not a valid IBAN: its check digits do not match (a typo?)".into());
    }
    Ok(())
}

/// The IBAN as ISO 7064 MOD 97-10 reads it: BBAN, then country and check digits, letters
/// as two-digit numbers (A = 10 ... Z = 35), reduced digit by digit so no big integer is
/// needed.
fn mod97(bban: &[u8], head: &[u8]) -> u32 {
    bban.iter().chain(head).fold(0u32, |acc, &c| {
        if c.is_ascii_digit() {
            (acc * 10 + u32::from(c - b'0')) % 97
        } else {
            (acc * 100 + u32::from(c - b'A') + 10) % 97
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_example_ibans_pass() {
        // Examples from the national IBAN formats (SWIFT IBAN registry).
        for ok in [
            "DE89370400440532013000",
            "GB29NWBK60161331926819",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "CH9300762011623852957",
            "AT611904300234573201",
            "BE68539007547034",
            "NO9386011117947",
            "MT84MALT011000012345MTLCAST001S",
        ] {
            assert_eq!(Checksum::Iban.verify(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn typos_and_bad_shapes_fail() {
        let wrong_digit = Checksum::Iban.verify("DE89370400440532013001").unwrap_err();
        assert!(wrong_digit.contains("check digits"), "{wrong_digit}");
        let swapped = Checksum::Iban.verify("DE89370400440532010300").unwrap_err();
        assert!(swapped.contains("check digits"), "{swapped}");
        for bad in [
            "DE89 3704 0044 0532 0130 00",
            "de89370400440532013000",
            "DE8937040044",
            "DEXX370400440532013000",
            "DE89370400440532013000ÄÄ",
            "",
        ] {
            let e = Checksum::Iban.verify(bad).unwrap_err();
            assert!(e.starts_with("is not an IBAN"), "{bad}: {e}");
        }
    }

    #[test]
    fn only_known_schemes_parse() {
        assert_eq!(Checksum::parse("iban"), Some(Checksum::Iban));
        assert_eq!(Checksum::parse("IBAN"), None);
        assert_eq!(Checksum::NAMES, ["iban"]);
    }
}
