//! LEB128 varints: seven bits a byte, low first, the high bit set on every byte but the
//! last. The ledger's packed rows (line spans, unit runs, lists of versions) and the X12
//! reader's list of sets write their numbers this way, most of them steps of one.

pub(crate) fn put_unsigned(out: &mut Vec<u8>, mut z: u64) {
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The varint at the front of `buf`, which is moved past it; `None` if `buf` ends inside
/// one, or it runs past 64 bits' worth of bytes.
pub(crate) fn take_unsigned(buf: &mut &[u8]) -> Option<u64> {
    let mut z = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        z |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(z);
        }
    }
    None
}
