//! The decoded dataset cache through the binary: a later run reads it, a damaged one is rebuilt,
//! and a changed archive is read (and judged) again rather than served from the cache.

mod common;

use common::{command, digest_line, the_run};
use std::path::{Path, PathBuf};

struct Place {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    cache: PathBuf,
    root: PathBuf,
}

/// A copy of the vendored MNIST and an empty cache.
fn place() -> Place {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    std::fs::create_dir(&data).unwrap();
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".gz") {
            std::fs::copy(e.path(), data.join(e.file_name())).unwrap();
        }
    }
    Place {
        data,
        cache: tmp.path().join("cache"),
        root: tmp.path().to_path_buf(),
        _tmp: tmp,
    }
}

/// A 20-step smoke run into a fresh runs directory `name`: (exit code, stderr, digest line).
fn run(p: &Place, name: &str, set: &[&str]) -> (i32, String, Option<String>) {
    let runs = p.root.join(name);
    let mut args = vec!["--verbose", "run", "experiments/smoke.toml"];
    args.extend(["--set", "train.steps=20"]);
    for s in set {
        args.extend(["--set", s]);
    }
    let out = command(&args, &runs)
        .env("RUNNER_MNIST_DIR", &p.data)
        .env("RUNNER_CACHE_DIR", &p.cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let digest = out
        .status
        .success()
        .then(|| digest_line("smoke", &the_run(&runs)));
    (out.status.code().unwrap_or(-1), err, digest)
}

fn cache_files(p: &Place) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p.cache.join("datasets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

const HIT: &str = "dataset read from its decoded cache";
const REBUILT: &str = "rebuilding it";

#[test]
fn a_later_run_reads_the_cache_and_a_damaged_cache_is_rebuilt_with_the_same_bits() {
    let p = place();
    let (code, err, first) = run(&p, "runs1", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(HIT), "{err}");
    let files = cache_files(&p);
    assert_eq!(files.len(), 1, "{files:?}");
    let cached = files[0].clone();

    let (code, err, second) = run(&p, "runs2", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(HIT), "{err}");
    assert_eq!(second, first);

    // One pixel of the training images changed in the cache file.
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[4096 + 16 + 60_000 * 784 / 2] ^= 0x40;
    std::fs::write(&cached, &bytes).unwrap();
    let (code, err, third) = run(&p, "runs3", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(REBUILT) && err.contains("section 0"), "{err}");
    assert_eq!(third, first);
    let (_, err, _) = run(&p, "runs4", &[]);
    assert!(err.contains(HIT), "the rebuilt cache is used: {err}");

    // Cut short.
    let len = std::fs::metadata(&cached).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cached)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    let (code, err, fifth) = run(&p, "runs5", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(REBUILT), "{err}");
    assert_eq!(fifth, first);
    assert_eq!(cache_files(&p), vec![cached]);
}

#[test]
fn a_changed_archive_is_read_and_judged_again_not_served_from_the_cache() {
    let p = place();
    let (code, err, _) = run(&p, "runs1", &[]);
    assert_eq!(code, 0, "{err}");
    // The vendored copy's sums are enforced: a changed archive fails even though the cache holds
    // the good data.
    let labels = p.data.join("t10k-labels-idx1-ubyte.gz");
    let good = std::fs::read(&labels).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&good[..]), &mut raw).unwrap();
    raw[100] = (raw[100] + 1) % 10;
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    std::fs::write(&labels, gz.finish().unwrap()).unwrap();
    let (code, err, _) = run(&p, "runs2", &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");

    // As a custom data.dir (no sums enforced) the changed archive is read, its sums recorded,
    // and the cache keeps one file for the directory.
    let dir = format!("data.dir={}", p.data.display());
    let (code, err, changed) = run(&p, "runs3", &[&dir]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(HIT), "{err}");
    std::fs::write(&labels, &good).unwrap();
    let (code, err, restored) = run(&p, "runs4", &[&dir]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(HIT), "{err}");
    assert_ne!(changed, restored);
    assert_eq!(cache_files(&p).len(), 1, "{:?}", cache_files(&p));
    let (_, err, again) = run(&p, "runs5", &[&dir]);
    assert!(err.contains(HIT), "{err}");
    assert_eq!(again, restored);
}
