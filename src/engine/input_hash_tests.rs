use super::*;

/// Four of blake3's chunks: small files span many pieces.
const SMALL: u64 = 4096;

/// Hashing that takes a file written a moment ago as settled.
fn fresh(input: &Path, state: Option<PathBuf>, fingerprint: &str, piece: u64) -> InputHash {
    InputHash::with_piece(input, state, fingerprint, piece, Duration::ZERO)
}

/// The fingerprint of `body` as intake takes it: blake3, hex.
fn hex(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

fn content(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A scratch folder holding an input of `len` bytes (`in`), and those bytes.
fn input_of(len: u64) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let body = content(len);
    std::fs::write(&input, &body).unwrap();
    (dir, input, body)
}

fn hashed(h: &InputHash) -> u64 {
    h.hashing.as_ref().expect("hashing").tree.hashed
}

/// A file of `len` bytes, hashed with a kept state: advanced to each of `stops`, then
/// opened again from the state (as a resume does) and finished.
fn resumed(len: u64, stops: &[u64]) -> (String, u64) {
    let (dir, input, _) = input_of(len);
    let state = dir.path().join("staging/state");
    let mut h = fresh(&input, Some(state.clone()), "fp", SMALL);
    for &s in stops {
        h.advance(s);
    }
    let before = hashed(&h);
    drop(h);
    let mut h = fresh(&input, Some(state), "fp", SMALL);
    assert_eq!(
        hashed(&h),
        before,
        "the kept state is taken up ({len} bytes)"
    );
    (h.finish().unwrap(), before)
}

#[test]
fn pieces_give_blake3_of_the_whole_file_at_every_size_and_pace() {
    let sizes = [
        0,
        1,
        1023,
        1024,
        1025,
        SMALL - 1,
        SMALL,
        SMALL + 1,
        2 * SMALL,
        3 * SMALL + 7,
        4 * SMALL,
        7 * SMALL,
        8 * SMALL,
        8 * SMALL + 1,
        13 * SMALL + 100,
        32 * SMALL,
        37 * SMALL + 5,
    ];
    for len in sizes {
        let want = hex(&content(len));
        let paces: [&[u64]; 4] = [
            &[],
            &[len],
            &[SMALL, 2 * SMALL + 1, 5 * SMALL, len / 2, len],
            &[u64::MAX],
        ];
        for stops in paces {
            let (got, _) = resumed(len, stops);
            assert_eq!(got, want, "{len} bytes, advanced to {stops:?}");
        }
        // Every whole piece but the last one is hashed as it is passed.
        let (_, before) = resumed(len, &[len]);
        assert_eq!(before, len.saturating_sub(1) / SMALL * SMALL, "{len} bytes");
    }
}

#[test]
fn a_real_sized_piece_gives_blake3_too() {
    let (_dir, input, body) = input_of(3 * PIECE + 12_345);
    let mut h = fresh(&input, None, "fp", PIECE);
    h.advance(2 * PIECE + 1);
    assert_eq!(hashed(&h), 2 * PIECE);
    assert_eq!(h.finish().unwrap(), hex(&body));
}

#[test]
fn a_state_is_kept_for_one_claim_of_one_file_only() {
    let (dir, input, body) = input_of(10 * SMALL + 3);
    let state = dir.path().join("state");
    let mut h = fresh(&input, Some(state.clone()), "fp", SMALL);
    h.advance(6 * SMALL);
    drop(h);
    let kept = std::fs::read(&state).unwrap();
    let fresh = |fingerprint: &str, piece: u64| {
        let mut h = fresh(&input, Some(state.clone()), fingerprint, piece);
        let n = hashed(&h);
        assert_eq!(h.finish().unwrap(), hex(&body));
        n
    };
    assert_eq!(fresh("fp", SMALL), 6 * SMALL, "taken up");
    assert_eq!(fresh("other", SMALL), 0, "another claim's");
    assert_eq!(fresh("fp", 2 * SMALL), 0, "pieces of another size");
    // Damaged anywhere, or cut short, it is not used.
    for at in [0, 5, 9, 40, kept.len() - 20, kept.len() - 1] {
        let mut bad = kept.clone();
        bad[at] ^= 0x10;
        std::fs::write(&state, &bad).unwrap();
        assert_eq!(fresh("fp", SMALL), 0, "a byte changed at {at}");
    }
    for len in [0, 4, 8, kept.len() / 2, kept.len() - 1] {
        std::fs::write(&state, &kept[..len]).unwrap();
        assert_eq!(fresh("fp", SMALL), 0, "cut to {len} bytes");
    }
}

/// Changes one byte of `input` where pieces were hashed, keeping its size and setting its
/// modification time back: only the change time tells.
fn change_behind_the_mtime(input: &Path) {
    let mtime = std::fs::metadata(input).unwrap().modified().unwrap();
    // The change time has the kernel's coarse clock: let it move on.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let mut body = std::fs::read(input).unwrap();
    body[10] ^= 1;
    std::fs::write(input, &body).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(input).unwrap();
    f.set_modified(mtime).unwrap();
    assert_eq!(std::fs::metadata(input).unwrap().modified().unwrap(), mtime);
}

#[test]
fn regression_a_change_to_hashed_pieces_is_seen_at_the_end() {
    let (_dir, input, _) = input_of(9 * SMALL);
    let mut h = fresh(&input, None, "fp", SMALL);
    h.advance(5 * SMALL);
    assert_eq!(hashed(&h), 5 * SMALL);
    change_behind_the_mtime(&input);
    let now = std::fs::read(&input).unwrap();
    assert_eq!(h.finish().unwrap(), hex(&now));
}

#[test]
fn regression_a_resume_does_not_take_up_pieces_of_a_file_changed_since() {
    let (dir, input, _) = input_of(9 * SMALL);
    let state = dir.path().join("state");
    let mut h = fresh(&input, Some(state.clone()), "fp", SMALL);
    h.advance(5 * SMALL);
    drop(h);
    change_behind_the_mtime(&input);
    let mut h = fresh(&input, Some(state), "fp", SMALL);
    assert_eq!(hashed(&h), 0);
    let now = std::fs::read(&input).unwrap();
    assert_eq!(h.finish().unwrap(), hex(&now));
}

/// A change within the file system's clock tick of the one before leaves the change time as
/// it was: no piece is hashed before that clock has passed the last change. Without a state
/// file to read the clock from, the last change must be old by this machine's clock.
#[test]
fn regression_no_piece_is_hashed_before_the_last_change_has_settled() {
    let (dir, input, body) = input_of(9 * SMALL);
    let an_hour = Duration::from_secs(3600);
    let mut h = InputHash::with_piece(&input, None, "fp", SMALL, an_hour);
    h.advance(5 * SMALL);
    assert_eq!(hashed(&h), 0, "no clock to read, and not an hour old");
    assert_eq!(h.finish().unwrap(), hex(&body));
    // A state kept beside it shows the file system's clock: once that has moved past the
    // input's last change (its ticks are at most 10 ms here), pieces are hashed.
    let state = dir.path().join("state");
    std::thread::sleep(Duration::from_millis(30));
    let mut h = InputHash::with_piece(&input, Some(state.clone()), "fp", SMALL, an_hour);
    h.advance(5 * SMALL);
    assert_eq!(
        hashed(&h),
        5 * SMALL,
        "the file system's clock has moved on"
    );
    assert_eq!(h.finish().unwrap(), hex(&body));
}

/// Before the file system's clock has passed the input's last change nothing is kept: a
/// kept state always holds hashed pieces (one of none would not be taken up either).
#[test]
fn no_state_is_kept_before_a_piece_is_hashed() {
    let (dir, input, _) = input_of(9 * SMALL);
    let state = dir.path().join("state");
    let mut h = fresh(&input, Some(state.clone()), "fp", SMALL);
    h.advance(SMALL / 2);
    assert!(!state.exists(), "nothing hashed, nothing kept");
    let id = h.hashing.as_ref().unwrap().id.expect("settled at once");
    let mut none = Tree::new(SMALL);
    std::fs::write(&state, encode(&none, id, "fp")).unwrap();
    let h = fresh(&input, Some(state.clone()), "fp", SMALL);
    assert!(
        h.hashing.as_ref().unwrap().id.is_none(),
        "a state of none is not taken up"
    );
    none.push(&content(SMALL));
    std::fs::write(&state, encode(&none, id, "fp")).unwrap();
    assert_eq!(
        hashed(&fresh(&input, Some(state), "fp", SMALL)),
        SMALL,
        "one piece is taken up"
    );
}

#[test]
fn a_missing_input_is_an_error_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = InputHash::open(&dir.path().join("gone"), None, "fp");
    h.advance(100);
    assert!(h.finish().is_err());
}
