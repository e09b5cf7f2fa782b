//! Content digests of the binary files grokscope writes (weights, resume state, checkpoints,
//! `dataset.safetensors`): a file is trusted only when its bytes are the bytes it was written
//! with (docs/OUTPUTS.md, "What is verified").
//!
//! The digest is the SHA-256 of the whole file with the 64 hex digits of the digest itself
//! replaced by `0`s, stored under the key [`KEY`] in grokscope's JSON metadata object (the
//! safetensors header). Every byte of the file — header, metadata, padding, tensor data —
//! is covered, and the file stays a plain safetensors file that any reader opens. A writer
//! puts [`PLACEHOLDER`] under [`KEY`], serializes, then calls [`seal`], which fills the digits
//! in place (the same length, so no offset moves); a reader calls [`verify`].
//!
//! Files written before digests existed have no digest: [`verify`] answers
//! [`Seal::Absent`] and the caller notes it. A damaged byte cannot make a sealed file look
//! like an old one: without the key, a header that still holds a run of 64 hex digits is
//! refused as damaged.

use sha2::{Digest, Sha256};

/// The metadata key of the digest (inside grokscope's JSON metadata object).
pub const KEY: &str = "sha256";
/// What a writer puts under [`KEY`] before [`seal`] fills in the digest.
pub const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What [`verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// The file has a digest and its bytes match it.
    Verified,
    /// The file has no digest (written before grokscope recorded them).
    Absent,
}

/// The SHA-256 of `parts`, concatenated, as 64 lower-case hex digits.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The safetensors header of `bytes` (after its 8-byte length), if the length fits the file.
fn header(bytes: &[u8]) -> Option<&[u8]> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = usize::try_from(n).ok()?.checked_add(8)?;
    bytes.get(8..end)
}

/// Where in `bytes` the digest's 64 digits are. The metadata object is a JSON string inside
/// the header's JSON, so its quotes are escaped: the key reads `sha256\":\"` there.
fn locate(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let h = header(bytes)?;
    let needle = format!("{KEY}\\\":\\\"");
    let at = find(h, needle.as_bytes())? + needle.len();
    let start = 8 + at;
    let end = start + PLACEHOLDER.len();
    (end <= 8 + h.len()).then_some(start..end)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `h` holds a run of at least 64 hex digits (a digest whose key was damaged).
fn has_digest_like(h: &[u8]) -> bool {
    let mut run = 0;
    for &b in h {
        run = if b.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= PLACEHOLDER.len() {
            return true;
        }
    }
    false
}

/// Fills in the digest of a file serialized with [`PLACEHOLDER`] under [`KEY`].
pub fn seal(bytes: &mut [u8]) -> Result<(), String> {
    let r = locate(bytes).ok_or("no digest placeholder in the metadata")?;
    if &bytes[r.clone()] != PLACEHOLDER.as_bytes() {
        return Err("the digest placeholder is not all zeros".into());
    }
    let d = sha256_hex(&[bytes]);
    bytes[r].copy_from_slice(d.as_bytes());
    Ok(())
}

/// Seals again a sealed file whose bytes were changed on purpose (the tests' way of
/// reaching the checks behind the digest): zeroes its digest, then [`seal`]s it.
pub fn reseal(bytes: &mut [u8]) -> Result<(), String> {
    let r = locate(bytes).ok_or("no digest in the metadata")?;
    bytes[r].copy_from_slice(PLACEHOLDER.as_bytes());
    seal(bytes)
}

/// Checks the digest of a file: `Err` says what is wrong with it.
pub fn verify(bytes: &[u8]) -> Result<Seal, String> {
    let Some(r) = locate(bytes) else {
        return match header(bytes) {
            Some(h) if has_digest_like(h) => Err(
                "its metadata holds a digest under a damaged key: the file was changed after grokscope wrote it"
                    .into(),
            ),
            _ => Ok(Seal::Absent),
        };
    };
    let found = &bytes[r.clone()];
    let want = sha256_hex(&[&bytes[..r.start], PLACEHOLDER.as_bytes(), &bytes[r.end..]]);
    if found == want.as_bytes() {
        Ok(Seal::Verified)
    } else {
        Err(format!(
            "its content does not match the SHA-256 digest it was written with (the file has {}, its metadata says {}): it was changed or damaged after grokscope wrote it",
            &want[..16],
            String::from_utf8_lossy(&found[..16.min(found.len())])
        ))
    }
}

/// Notes, once per file and process, that `path` has no digest to check.
pub fn note_unsealed(path: &std::path::Path) {
    static SEEN: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    if let Ok(mut seen) = SEEN.lock() {
        if !seen.iter().any(|p| p == path) {
            seen.push(path.to_path_buf());
            eprintln!(
                "note: {} has no content digest (written before grokscope recorded them): it is read unchecked",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors-like file: 8-byte header length, a header holding the escaped key.
    fn file(meta: &str, data: &[u8]) -> Vec<u8> {
        let h = format!("{{\"__metadata__\":{{\"grokscope\":\"{meta}\"}}}}");
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend(h.as_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn sealed_file_verifies_and_every_changed_byte_is_caught() {
        let meta = format!("{{\\\"format\\\":\\\"x\\\",\\\"{KEY}\\\":\\\"{PLACEHOLDER}\\\"}}");
        let mut b = file(&meta, &[1, 2, 3, 4, 5, 6, 7, 8]);
        seal(&mut b).unwrap();
        assert_eq!(verify(&b), Ok(Seal::Verified));
        assert_ne!(&b[locate(&b).unwrap()], PLACEHOLDER.as_bytes());
        // Every single-byte change after the length prefix is refused (a change inside the
        // prefix makes the header unreadable, which the safetensors parser refuses).
        for i in 8..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x01;
            assert!(verify(&c).is_err(), "byte {i} changed, still verified");
        }
    }

    #[test]
    fn file_without_digest_is_absent_not_an_error() {
        let b = file("{\\\"format\\\":\\\"x\\\",\\\"step\\\":\\\"3\\\"}", &[0; 8]);
        assert_eq!(verify(&b), Ok(Seal::Absent));
        let mut b = b;
        assert!(seal(&mut b).is_err());
    }

    #[test]
    fn sha256_of_known_text() {
        // FIPS 180-2's example "abc".
        assert_eq!(
            sha256_hex(&[b"ab", b"c"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
