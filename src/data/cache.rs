//! The decoded dataset cache: the four decompressed IDX files of a dataset in one file under
//! `<cache>/datasets/`, memory-mapped by later runs so that a run starts without decompressing.
//!
//! Trust: the file records each section's SHA-256 (what runs record, computed from the archive's
//! content when the file was written) and its BLAKE3, which a reader computes again over every
//! byte: BLAKE3 because it runs at several GB/s on any x86-64 (SHA-256 without the SHA
//! extensions, as on many clusters' CPUs, costs ~120 ms for MNIST's training images). Where the
//! sums are enforced (the vendored MNIST) the BLAKE3 must also be the one compiled into runner
//! for that file, so a cache file cannot pass other bytes off as MNIST. A changed, truncated or
//! unreadable file is rebuilt from the archives. Which archives a file stands for is its name:
//! their directory and each one's inode, size, mtime and ctime (any rewrite of an archive changes
//! its ctime, so a replaced or damaged archive is read, and reported, again).

use super::bytes::Bytes;
use super::idx::Idx;
use crate::config::hex;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RUNNERDS";
const FORMAT: u32 = 1;
/// The files of a dataset (MNIST's four), one section each.
pub const SECTIONS: usize = 4;
/// Magic, format, section count, then (offset, length, SHA-256, BLAKE3) per section.
const HEADER: usize = 16 + SECTIONS * ENTRY;
const ENTRY: usize = 80;

/// `(SHA-256, BLAKE3)` of the decompressed files whose sums runner enforces (the vendored MNIST,
/// `mnist::MNIST_SHA256`).
const TRUSTED: [(&str, &str); 4] = [
    (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "c6e6fd8c67d07c8a9b7bffa7dd0413ff4b8af241607b049b7721107f379df9fd",
    ),
    (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "8ebcfdf2fe191516f9cb37fceb75d2d19289d91ee92026534ed45e44144b5642",
    ),
    (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "f8d502322cd9f186e155a74a3dff598ed56c1a7b5a5c8d312749ac47c4a2bec7",
    ),
    (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "6d43ea317fa8f5851bb85404bb7358defd48b0294cf31f60cdcde8106fe2c3ad",
    ),
];
/// Sections start on a page so that their mapping is aligned.
const ALIGN: usize = 4096;

/// The cache directory for decoded datasets.
pub fn dir() -> PathBuf {
    crate::cache_dir::root().join("datasets")
}

/// The cache file that stands for the archives `files` in `data_dir` as they are now: named by
/// the directory and each archive's device, inode, size, mtime and ctime. `None` when one cannot
/// be examined (the full read then reports why).
pub fn path_for(data_dir: &Path, files: &[&str]) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(data_dir).ok()?;
    let mut state = Sha256::new();
    for f in files {
        let m = std::fs::metadata(abs.join(f)).ok()?;
        state.update(format!(
            "{f} {} {} {} {}.{} {}.{}\n",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ));
    }
    let place = hex(&Sha256::digest(abs.as_os_str().as_encoded_bytes()));
    let state = hex(&state.finalize());
    Some(dir().join(format!("{}-{}.idx4", &place[..16], &state[..16])))
}

/// Why a cache file was not used.
#[derive(Debug, PartialEq)]
pub enum Miss {
    /// There is none (the first run on this data, or the cache was cleared).
    Absent,
    /// It exists but is not what it claims: rebuilt.
    Damaged(String),
}

/// The sections of `path` (each file's bytes, with the SHA-256 recorded for it), each hashed
/// again and matched with its recorded BLAKE3, and with `expected` (SHA-256 sums) when given.
pub fn read(
    path: &Path,
    expected: Option<[&str; SECTIONS]>,
) -> Result<[(Bytes, String); SECTIONS], Miss> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
        Err(e) => return Err(Miss::Damaged(format!("cannot open it ({e})"))),
    };
    // SAFETY: the file is only ever replaced by rename, never written in place, so the mapped
    // bytes do not change while mapped; every byte used is hashed and checked below first.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| Miss::Damaged(format!("cannot map it ({e})")))?;
    let sections = sections(&map).map_err(Miss::Damaged)?;
    let all = Bytes::mapped(map);
    let raw: Vec<Bytes> = sections.iter().map(|s| all.slice(s.start, s.len)).collect();
    // The training images are 47 MB of the 55: hash them beside the rest.
    let b3 = |b: &Bytes| *blake3::hash(b).as_bytes();
    let sums: Vec<[u8; 32]> = std::thread::scope(|s| {
        let big = s.spawn(|| b3(&raw[0]));
        let mut rest: Vec<[u8; 32]> = raw[1..].iter().map(b3).collect();
        rest.insert(0, big.join().expect("hash thread panicked"));
        rest
    });
    let mut files = Vec::with_capacity(SECTIONS);
    for (i, ((raw, sum), s)) in raw.into_iter().zip(sums).zip(&sections).enumerate() {
        let (sha256, blake3) = (hex(&s.sha256), hex(&s.blake3));
        if sum != s.blake3 {
            return Err(Miss::Damaged(format!(
                "section {i} has BLAKE3 {}, recorded {blake3}",
                hex(&sum)
            )));
        }
        if let Some(want) = expected.map(|e| e[i]) {
            let trusted = TRUSTED.iter().find(|(sha, _)| *sha == want);
            let proven = match trusted {
                Some((_, b3)) => *b3 == blake3,
                None => hex(&Sha256::digest(&*raw)) == want,
            };
            if sha256 != want || !proven {
                return Err(Miss::Damaged(format!(
                    "section {i} is not the expected file (SHA-256 {want})"
                )));
            }
        }
        files.push((raw, sha256));
    }
    Ok(files.try_into().expect("every section"))
}

/// Where a section lies in the file and what it hashes to.
struct Section {
    start: usize,
    len: usize,
    sha256: [u8; 32],
    blake3: [u8; 32],
}

/// The sections of `file`, checked to lie inside it and to end it.
fn sections(file: &[u8]) -> Result<Vec<Section>, String> {
    if file.len() < HEADER || &file[..8] != MAGIC {
        return Err("not a runner dataset cache file (bad magic or too short)".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
    if u32_at(8) != FORMAT || u32_at(12) as usize != SECTIONS {
        return Err(format!(
            "format {} with {} sections, this runner reads format {FORMAT} with {SECTIONS}",
            u32_at(8),
            u32_at(12),
        ));
    }
    let mut out = Vec::with_capacity(SECTIONS);
    let mut end = 0;
    for i in 0..SECTIONS {
        let at = 16 + i * ENTRY;
        let (start, len) = (u64_at(at), u64_at(at + 8));
        let stop = start.checked_add(len).filter(|&s| s <= file.len() as u64);
        let Some(stop) = stop.filter(|_| start >= HEADER as u64) else {
            return Err(format!(
                "section {i} ({start}+{len}) lies outside the file's {} bytes (truncated?)",
                file.len()
            ));
        };
        end = end.max(stop as usize);
        out.push(Section {
            start: start as usize,
            len: len as usize,
            sha256: file[at + 16..at + 48].try_into().unwrap(),
            blake3: file[at + 48..at + 80].try_into().unwrap(),
        });
    }
    if end != file.len() {
        return Err(format!("{} bytes after the last section", file.len() - end));
    }
    Ok(out)
}

/// Writes `files` to `path` whole or not at all (a temporary file renamed into place).
pub fn write(path: &Path, files: &[Idx]) -> std::io::Result<()> {
    let dir = path.parent().expect("a cache file has a directory");
    std::fs::create_dir_all(dir)?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend(MAGIC);
    header.extend(FORMAT.to_le_bytes());
    header.extend((files.len() as u32).to_le_bytes());
    let mut at = HEADER.next_multiple_of(ALIGN);
    let mut starts = Vec::new();
    for f in files {
        let sum: Vec<u8> = (0..32)
            .map(|k| u8::from_str_radix(&f.sha256[2 * k..2 * k + 2], 16).expect("a hex digest"))
            .collect();
        header.extend((at as u64).to_le_bytes());
        header.extend((f.raw.len() as u64).to_le_bytes());
        header.extend(sum);
        header.extend(blake3::hash(&f.raw).as_bytes());
        starts.push(at);
        at = (at + f.raw.len()).next_multiple_of(ALIGN);
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let out = tmp.as_file_mut();
    out.write_all(&header)?;
    let mut written = header.len();
    for (f, &start) in files.iter().zip(&starts) {
        out.write_all(&vec![0u8; start - written])?;
        out.write_all(&f.raw)?;
        written = start + f.raw.len();
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// How many decoded datasets the cache keeps (55 MB each for MNIST's size).
const KEEP: usize = 8;

/// Removes the cache files of other states of the directory `path` stands for (its archives
/// changed), then the oldest beyond [`KEEP`].
pub fn forget_older(path: &Path) {
    let (Some(name), Ok(entries)) = (
        path.file_name().and_then(|n| n.to_str()),
        std::fs::read_dir(dir()),
    ) else {
        return;
    };
    let place = name.split('-').next().unwrap_or(name);
    let mut others = Vec::new();
    for e in entries.flatten() {
        let other = e.file_name().to_string_lossy().into_owned();
        if other == name || !other.ends_with(".idx4") {
            continue;
        }
        if other.starts_with(&format!("{place}-")) {
            let _ = std::fs::remove_file(e.path());
        } else if let Ok(modified) = e.metadata().and_then(|m| m.modified()) {
            others.push((modified, e.path()));
        }
    }
    others.sort();
    let excess = (others.len() + 1).saturating_sub(KEEP);
    for (_, old) in others.into_iter().take(excess) {
        let _ = std::fs::remove_file(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx;
    use crate::data::mnist::{magic, FILES};

    fn idx_file(magic: u32, dims: &[u32], data: &[u8]) -> Idx {
        let mut raw = magic.to_be_bytes().to_vec();
        for d in dims {
            raw.extend(d.to_be_bytes());
        }
        raw.extend(data);
        idx::decode(&raw, magic).unwrap()
    }

    fn four() -> Vec<Idx> {
        vec![
            idx_file(idx::MAGIC_IMAGES, &[3, 28, 28], &[9; 3 * 784]),
            idx_file(idx::MAGIC_LABELS, &[3], &[1, 2, 3]),
            idx_file(idx::MAGIC_IMAGES, &[1, 28, 28], &[4; 784]),
            idx_file(idx::MAGIC_LABELS, &[1], &[7]),
        ]
    }

    fn damaged(r: Result<[(Bytes, String); SECTIONS], Miss>) -> String {
        match r {
            Err(Miss::Damaged(why)) => why,
            other => panic!("expected a damaged cache, got {other:?}"),
        }
    }

    #[test]
    fn a_written_file_reads_back_mapped_with_the_same_sums() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.idx4");
        let files = four();
        write(&path, &files).unwrap();
        let back = read(&path, None).unwrap();
        for (i, (a, (raw, sha))) in files.iter().zip(back).enumerate() {
            let b = idx::decode_hashed(raw, magic(i), sha).unwrap();
            assert_eq!((&a.dims, &a.data, &a.sha256), (&b.dims, &b.data, &b.sha256));
            assert!(b.data.is_mapped());
        }
        let sums: Vec<&str> = files.iter().map(|f| f.sha256.as_str()).collect();
        assert!(read(&path, Some(sums.try_into().unwrap())).is_ok());
        assert_eq!(
            read(&dir.path().join("none.idx4"), None).unwrap_err(),
            Miss::Absent
        );
    }

    #[test]
    fn a_changed_truncated_or_foreign_file_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx4");
        write(&path, &four()).unwrap();
        let good = std::fs::read(&path).unwrap();

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let why = damaged(read(&path, None));
        assert!(why.contains("section 3") && why.contains("BLAKE3"), "{why}");

        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        let why = damaged(read(&path, None));
        assert!(
            why.contains("outside") || why.contains("truncated"),
            "{why}"
        );

        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(damaged(read(&path, None)).contains("after the last section"));

        std::fs::write(&path, b"not a cache").unwrap();
        assert!(damaged(read(&path, None)).contains("magic"));

        std::fs::write(&path, &good).unwrap();
        let why = damaged(read(&path, Some(crate::data::mnist::MNIST_SHA256)));
        assert!(
            why.contains("section 0") && why.contains("expected"),
            "{why}"
        );
        // Recorded as MNIST, with a consistent BLAKE3 of other bytes: not the trusted file.
        let mut forged = four();
        forged[0].sha256 = crate::data::mnist::MNIST_SHA256[0].to_string();
        write(&path, &forged).unwrap();
        let why = damaged(read(&path, Some(crate::data::mnist::MNIST_SHA256)));
        assert!(
            why.contains("section 0") && why.contains("not the expected"),
            "{why}"
        );
    }

    #[test]
    fn the_trusted_sums_are_those_of_the_vendored_mnist() {
        let source = crate::data::mnist::Source::for_config(&Default::default());
        for (i, f) in FILES.iter().enumerate() {
            let file = idx::read_gz(&source.dir.join(format!("{f}.gz")), magic(i)).unwrap();
            assert_eq!(TRUSTED[i].0, crate::data::mnist::MNIST_SHA256[i]);
            assert_eq!(TRUSTED[i].0, file.sha256);
            assert_eq!(TRUSTED[i].1, hex(blake3::hash(&file.raw).as_bytes()));
        }
    }
}
