//! Reader for gzip-compressed IDX files (the MNIST container format).

use super::bytes::Bytes;
use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// IDX magic for unsigned-byte tensors of rank 3 (images) and rank 1 (labels).
pub const MAGIC_IMAGES: u32 = 0x0000_0803;
pub const MAGIC_LABELS: u32 = 0x0000_0801;

/// A decoded IDX tensor of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    /// The payload: `raw` after its header.
    pub data: Bytes,
    /// The whole decompressed file, header included.
    pub raw: Bytes,
    /// SHA-256 (hex) of `raw`.
    pub sha256: String,
}

/// The most data bytes an IDX file may promise (MNIST's training images are 47 MB).
pub const MAX_PAYLOAD: usize = 1 << 31;

/// A dataset file that is missing, a symlink loop or not a file is bad data (exit 3); any
/// other failure to open it (permissions, the disk) is an I/O error.
fn open_error(path: &Path, e: std::io::Error) -> Error {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => "is missing",
        std::io::ErrorKind::IsADirectory => "is a directory",
        _ if e.raw_os_error() == Some(libc::ELOOP) => "is a loop of symbolic links",
        _ => return Error::io("read dataset file", path, e),
    };
    Error::Data(format!("dataset file {} {what}", path.display()))
}

/// Reads and decompresses `path`, checks the magic number and that the payload holds exactly
/// the number of bytes the header promises. Decompression stops one byte past that promise, so
/// a small file that inflates without end (a gzip bomb) costs no more memory than its header
/// claims, and the claim is capped at [`MAX_PAYLOAD`].
pub fn read_gz(path: &Path, expected_magic: u32) -> Result<Idx> {
    let file = std::fs::File::open(path).map_err(|e| open_error(path, e))?;
    let bad = |msg: String| Error::Data(format!("{}: {msg}", path.display()));
    let not_gzip = |e: std::io::Error| bad(format!("not a valid gzip file ({e})"));
    let mut gz = GzDecoder::new(std::io::BufReader::with_capacity(1 << 16, file));
    // The header: the magic number (whose low byte is the rank), then one word per dimension.
    let mut raw = vec![0u8; 4];
    let n = read_fully(&mut gz, &mut raw).map_err(not_gzip)?;
    if n < 4 {
        raw.truncate(n);
        return decode_owned(raw, expected_magic).map_err(bad);
    }
    let rank = (u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) & 0xff) as usize;
    if rank > 4 {
        // Not an IDX file (MNIST's have rank 1 or 3): decode says why.
        return decode_owned(raw, expected_magic).map_err(bad);
    }
    raw.resize(4 * (rank + 1), 0);
    let n = read_fully(&mut gz, &mut raw[4..]).map_err(not_gzip)?;
    if n < 4 * rank {
        raw.truncate(4 + n);
        return decode_owned(raw, expected_magic).map_err(bad);
    }
    let promised = raw[4..]
        .chunks_exact(4)
        .try_fold(1usize, |acc, d| {
            acc.checked_mul(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        })
        .filter(|&n| n <= MAX_PAYLOAD)
        .ok_or_else(|| {
            bad(format!(
                "its header promises more than {} GiB of data; not an MNIST-like dataset",
                MAX_PAYLOAD >> 30
            ))
        })?;
    raw.reserve_exact(promised + 1);
    gz.take(promised as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(not_gzip)?;
    decode_owned(raw, expected_magic).map_err(bad)
}

/// Fills `buf` as far as the stream goes; returns how many bytes it read.
fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..])? {
            0 => break,
            n => at += n,
        }
    }
    Ok(at)
}

/// Parses decompressed IDX bytes. The error is a message without the file name.
pub fn decode(raw: &[u8], expected_magic: u32) -> std::result::Result<Idx, String> {
    decode_owned(raw.to_vec(), expected_magic)
}

/// [`decode`], keeping `raw`'s buffer for the payload: the training images are 47 MB, and a
/// copy of them cost a new allocation's page faults in every run's start-up.
fn decode_owned(raw: Vec<u8>, expected_magic: u32) -> std::result::Result<Idx, String> {
    let sha256 = crate::config::hex(&Sha256::digest(&raw));
    decode_hashed(raw.into(), expected_magic, sha256)
}

/// Parses decompressed IDX bytes whose SHA-256 the caller has computed (`sha256`).
pub fn decode_hashed(
    raw: Bytes,
    expected_magic: u32,
    sha256: String,
) -> std::result::Result<Idx, String> {
    let word = |i: usize| -> Option<u32> {
        raw.get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let magic = word(0).ok_or("truncated: shorter than the 4-byte IDX magic number")?;
    if magic != expected_magic {
        return Err(format!(
            "wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x} ({})",
            if expected_magic == MAGIC_IMAGES {
                "unsigned-byte images, rank 3"
            } else {
                "unsigned-byte labels, rank 1"
            }
        ));
    }
    let rank = (magic & 0xff) as usize;
    let dims: Vec<usize> = (1..=rank)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or("truncated: the header ends before its dimensions")?;
    let header = 4 * (rank + 1);
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("dimensions overflow")?;
    let payload = raw.len() - header;
    if payload != expected {
        let what = if payload < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(format!(
            "{what}: header dimensions {dims:?} need {expected} data bytes, file has {payload}"
        ));
    }
    Ok(Idx {
        dims,
        data: raw.slice(header, payload),
        raw,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    #[test]
    fn decodes_images_and_labels() {
        let img = decode(&encode(MAGIC_IMAGES, &[2, 2, 3], &[1; 12]), MAGIC_IMAGES).unwrap();
        assert_eq!(img.dims, vec![2, 2, 3]);
        assert_eq!(img.data.len(), 12);
        let lab = decode(&encode(MAGIC_LABELS, &[3], &[7, 8, 9]), MAGIC_LABELS).unwrap();
        assert_eq!((lab.dims, lab.data.to_vec()), (vec![3], vec![7, 8, 9]));
    }

    #[test]
    fn sha256_is_of_the_decompressed_bytes() {
        // sha256 of the empty label file "00000801 00000000"
        let raw = encode(MAGIC_LABELS, &[0], &[]);
        let idx = decode(&raw, MAGIC_LABELS).unwrap();
        assert_eq!(idx.sha256, crate::config::hex(&Sha256::digest(&raw)));
    }

    #[test]
    fn rejects_wrong_magic_truncation_and_trailing_bytes() {
        let err = decode(&encode(MAGIC_LABELS, &[3], &[1, 2, 3]), MAGIC_IMAGES).unwrap_err();
        assert!(err.contains("wrong IDX magic number 0x00000801"), "{err}");
        let err = decode(&encode(MAGIC_IMAGES, &[2, 2, 3], &[1; 11]), MAGIC_IMAGES).unwrap_err();
        assert!(
            err.contains("truncated") && err.contains("12") && err.contains("11"),
            "{err}"
        );
        let err = decode(&encode(MAGIC_LABELS, &[2], &[1, 2, 3]), MAGIC_LABELS).unwrap_err();
        assert!(err.contains("trailing bytes"), "{err}");
        let err = decode(&[0, 0], MAGIC_LABELS).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let err = decode(&MAGIC_IMAGES.to_be_bytes(), MAGIC_IMAGES).unwrap_err();
        assert!(err.contains("header ends"), "{err}");
    }

    #[test]
    fn a_corrupt_gzip_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        std::fs::write(&p, b"not gzip at all").unwrap();
        let msg = read_gz(&p, MAGIC_LABELS).unwrap_err().to_string();
        assert!(msg.contains("x.gz") && msg.contains("gzip"), "{msg}");
        let msg = read_gz(&dir.path().join("missing.gz"), MAGIC_LABELS)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("missing.gz") && msg.contains("missing"),
            "{msg}"
        );
    }
}
