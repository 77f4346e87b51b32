//! Issue 35: bad input of any size costs bounded memory. This file holds only tests whose
//! children's peak memory it measures (`getrusage(RUSAGE_CHILDREN)` covers every child of the
//! test process, so nothing else here may spawn a large one).

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Peak resident memory of the largest child waited for so far, in MiB.
fn children_peak_mib() -> f64 {
    // SAFETY: getrusage writes one rusage into the zeroed struct we own; no other effect.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut u), 0);
        u
    };
    usage.ru_maxrss as f64 / 1024.0
}

/// Finding 5: a 2 MB train-images file whose header says 60000x28x28 but which inflates to
/// more than a GiB was decompressed whole (2.2 GB of memory, 7.7 s) before "trailing bytes".
#[test]
fn a_gzip_bomb_costs_no_more_than_its_header_claims() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in [
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(Path::new(ROOT).join("data/mnist").join(f), data.join(f)).unwrap();
    }
    let images = "train-images-idx3-ubyte.gz";
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(Path::new(ROOT).join("data/mnist").join(images)).unwrap(),
    )
    .read_to_end(&mut raw)
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(data.join(images)).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&raw).unwrap();
    let zeros = vec![0u8; 1 << 24];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap(); // 1 GiB past the header's promise
    }
    gz.finish().unwrap();
    let size = std::fs::metadata(data.join(images)).unwrap().len();
    assert!(size < 20 << 20, "the bomb is {size} bytes");
    let exp = dir.path().join("exp.toml");
    std::fs::write(
        &exp,
        format!(
            "name = \"bomb\"\n[data]\ndir = {:?}\n[model]\nkind = \"mlp\"\nhidden = [32]\n\
             [optimizer]\nkind = \"sgd\"\nlr = 0.1\n[train]\nsteps = 2\n",
            data
        ),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["run", exp.to_str().unwrap(), "--runs-dir"])
        .arg(dir.path().join("runs"))
        .env("RUNNER_BUILD", "never")
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(images) && stderr.contains("trailing bytes"),
        "{stderr}"
    );
    let peak = children_peak_mib();
    eprintln!("gzip bomb: refused in {took:?}, peak {peak:.0} MiB");
    assert!(peak < 400.0, "peak {peak:.0} MiB");
}
