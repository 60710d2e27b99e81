//! The GEPBD identifiers the emulator derives from ODC LMK keys.
//!
//! The real services' keys never join (LMK_KEY was removed from GEPBD and
//! officially cannot be linked to certificate numbers), but the emulator
//! serves both APIs from one set of rows, so it needs a GEPBD number for each
//! row. The derivation is a hash so that the number is stable across runs and
//! across input orderings (a client's checkpoint stays valid when the emulator
//! restarts), and it is public so that tests can compute what to expect.

use sha2::{Digest, Sha256};

/// The GEPBD certificate number (`NNNN-NNNN-NNNN-NNNN-NNNN`) the emulator
/// gives the certificate with this LMK key: the first 16 bytes of
/// SHA-256(`lmk_key`) as a big-endian integer, modulo 10^20, as 20 digits.
///
/// Uniqueness is not guaranteed by construction; [`crate::Emulator::load`]
/// checks it over the loaded data and refuses a collision.
pub fn gepbd_certificate_number(lmk_key: &str) -> String {
    number_from_hash(lmk_key.as_bytes())
}

/// The number of the recommendation report that goes with a non-domestic or
/// display certificate (`relatedRrn` / `related_certificate_number`): the same
/// derivation over a distinct input, so it never equals a certificate number
/// by construction of the input (and `load` checks the outputs too).
pub(crate) fn related_report_number(lmk_key: &str) -> String {
    let mut input = b"recommendation-report:".to_vec();
    input.extend_from_slice(lmk_key.as_bytes());
    number_from_hash(&input)
}

fn number_from_hash(input: &[u8]) -> String {
    let digest = Sha256::digest(input);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    let n = u128::from_be_bytes(first) % 100_000_000_000_000_000_000u128;
    let digits = format!("{n:020}");
    let groups: Vec<&str> = (0..5).map(|i| &digits[i * 4..i * 4 + 4]).collect();
    groups.join("-")
}

/// Whether `s` has the shape of a GEPBD certificate number.
pub(crate) fn is_certificate_number(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_stability() {
        let n = gepbd_certificate_number(
            "0003352408dad177e827f77c62ed7172f2f16336c44dcdedbc315d08755600a2",
        );
        assert!(is_certificate_number(&n), "{n}");
        assert_eq!(
            n,
            gepbd_certificate_number(
                "0003352408dad177e827f77c62ed7172f2f16336c44dcdedbc315d08755600a2"
            )
        );
        assert_ne!(
            n,
            related_report_number(
                "0003352408dad177e827f77c62ed7172f2f16336c44dcdedbc315d08755600a2"
            )
        );
        assert!(!is_certificate_number("0000-0000-0000-0000"));
        assert!(!is_certificate_number("0000-0000-0000-0000-000a"));
        assert!(!is_certificate_number("00000-000-0000-0000-0000"));
    }
}
