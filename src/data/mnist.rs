//! MNIST-format datasets: four gzip IDX files, 28x28 unsigned-byte images, labels 0..9.

use super::bytes::Bytes;
use super::cache;
use super::idx::{self, Idx};
use crate::config::DataConfig;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
pub const CLASSES: usize = 10;

/// The four files, in the fixed order used for the dataset digest.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// SHA-256 of the decompressed vendored MNIST files (from `data/mnist/README.md`).
pub const MNIST_SHA256: [&str; 4] = [
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
];

/// One split: images as raw bytes (row-major 28x28 each) and labels.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub images: Bytes,
    pub labels: Bytes,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Writes image `i` into `out` scaled to [0, 1], as the reference program does (x / 255).
    pub fn write_image(&self, i: usize, out: &mut [f32]) {
        let px = &self.images[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS];
        for (o, &p) in out.iter_mut().zip(px) {
            *o = p as f32 / 255.0;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub train: Split,
    pub test: Split,
    /// Training images held out by `data.validation` (see [`Dataset::hold_out`]).
    pub validation: Option<Split>,
    /// Directory the files were read from.
    pub dir: PathBuf,
    /// `(file name, sha256 of decompressed content)` for each of the four files.
    pub checksums: Vec<(String, String)>,
}

/// Where the data of an experiment lives and whether its checksums are enforced.
#[derive(Debug, Clone)]
pub struct Source {
    pub dir: PathBuf,
    /// Known checksums to enforce (the vendored copy); `None` for a custom directory.
    pub expected: Option<[&'static str; 4]>,
}

impl Source {
    pub fn for_config(cfg: &DataConfig) -> Source {
        match &cfg.dir {
            Some(dir) => Source {
                dir: PathBuf::from(dir),
                expected: None,
            },
            None => Source {
                dir: vendored_dir(),
                expected: Some(MNIST_SHA256),
            },
        }
    }

    /// The digest that enters the run hash, known without reading the files when the
    /// checksums are enforced.
    pub fn known_digest(&self) -> Option<String> {
        self.expected
            .map(|sums| digest_of(FILES.iter().copied().zip(sums)))
    }
}

/// Where the vendored copy is looked for, in order: `$RUNNER_MNIST_DIR` alone when set; else
/// `data/mnist` of the source tree this binary was built from, then
/// `$XDG_DATA_HOME/runner/mnist` (`~/.local/share/runner/mnist`), for an installed binary whose
/// checkout is gone.
pub fn vendored_candidates() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("RUNNER_MNIST_DIR") {
        return vec![PathBuf::from(dir)];
    }
    let mut out = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")];
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(home) = data_home {
        out.push(home.join("runner/mnist"));
    }
    out
}

/// The first of [`vendored_candidates`] that exists (else the first, which the error names).
pub fn vendored_dir() -> PathBuf {
    let candidates = vendored_candidates();
    candidates
        .iter()
        .find(|d| d.is_dir())
        .unwrap_or(&candidates[0])
        .clone()
}

/// One digest over the four per-file checksums, in `FILES` order.
pub fn digest_of<'a>(sums: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (file, sum) in sums {
        h.update(format!("{file} {sum}\n"));
    }
    crate::config::hex(&h.finalize())
}

impl Dataset {
    /// Reads the dataset from the decoded cache when it holds these archives intact, else from
    /// the archives, caching it for the next run once it proves to be a dataset.
    pub fn load(source: &Source) -> Result<Dataset> {
        let archives = FILES.map(|f| format!("{f}.gz"));
        let cached = cache::path_for(&source.dir, &archives.each_ref().map(String::as_str));
        let hit = cached
            .as_deref()
            .and_then(|path| match from_cache(path, source.expected) {
                Ok(files) => {
                    crate::verbose::say(|| {
                        format!("dataset read from its decoded cache {}", path.display())
                    });
                    Some(files)
                }
                Err(cache::Miss::Absent) => None,
                Err(cache::Miss::Damaged(why)) => {
                    crate::verbose::say(|| {
                        format!("dataset cache {}: {why}; rebuilding it", path.display())
                    });
                    None
                }
            });
        let from_cache = hit.is_some();
        let files = match hit {
            Some(files) => files,
            None => read_archives(source)?,
        };
        let to_cache = (!from_cache).then(|| files.clone());
        let data = Dataset::from_files(source, files)?;
        if let (Some(path), Some(files)) = (cached, to_cache) {
            match cache::write(&path, &files) {
                Ok(()) => cache::forget_older(&path),
                Err(e) => crate::verbose::say(|| {
                    format!("dataset cache {} not written: {e}", path.display())
                }),
            }
        }
        Ok(data)
    }

    /// The dataset of the four decoded files of `source`, checked to make two splits.
    fn from_files(source: &Source, files: [Idx; 4]) -> Result<Dataset> {
        let path = |i: usize| source.dir.join(format!("{}.gz", FILES[i]));
        let checksums: Vec<(String, String)> = FILES
            .iter()
            .zip(&files)
            .map(|(n, f)| (n.to_string(), f.sha256.clone()))
            .collect();
        let mut it = files.into_iter();
        let mut split = |images_file: usize| -> Result<Split> {
            let images = it.next().expect("four files");
            let labels = it.next().expect("four files");
            make_split(images, labels, &path(images_file), &path(images_file + 1))
        };
        let train = split(0)?;
        let test = split(2)?;
        Ok(Dataset {
            train,
            test,
            validation: None,
            dir: source.dir.clone(),
            checksums,
        })
    }

    /// Moves `n` training examples, drawn without replacement by a generator seeded with
    /// `seed` (ChaCha8, stream 2: the weights use stream 0 and the data order stream 1), into
    /// the validation split. Both splits keep the files' order.
    pub fn hold_out(&mut self, n: usize, seed: u64) {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(2);
        let mut held = vec![false; self.train.len()];
        for i in rand::seq::index::sample(&mut rng, self.train.len(), n) {
            held[i] = true;
        }
        let (mut train, mut validation) = ((vec![], vec![]), (vec![], vec![]));
        for (i, &h) in held.iter().enumerate() {
            let (images, labels) = if h { &mut validation } else { &mut train };
            images.extend_from_slice(&self.train.images[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]);
            labels.push(self.train.labels[i]);
        }
        let split = |(images, labels): (Vec<u8>, Vec<u8>)| Split {
            images: images.into(),
            labels: labels.into(),
        };
        self.train = split(train);
        self.validation = Some(split(validation));
    }

    pub fn digest(&self) -> String {
        digest_of(self.checksums.iter().map(|(f, s)| (f.as_str(), s.as_str())))
    }
}

/// The four files in the decoded cache file `path`, checked there and decoded here.
fn from_cache(
    path: &Path,
    expected: Option<[&str; 4]>,
) -> std::result::Result<[Idx; 4], cache::Miss> {
    let mut files = Vec::with_capacity(FILES.len());
    for (i, (raw, sha256)) in cache::read(path, expected)?.into_iter().enumerate() {
        let file = idx::decode_hashed(raw, magic(i), sha256)
            .map_err(|why| cache::Miss::Damaged(format!("section {i} ({}): {why}", FILES[i])))?;
        files.push(file);
    }
    Ok(files.try_into().expect("four files"))
}

/// The IDX magic number of file `i` of [`FILES`].
pub fn magic(i: usize) -> u32 {
    if i.is_multiple_of(2) {
        idx::MAGIC_IMAGES
    } else {
        idx::MAGIC_LABELS
    }
}

/// The four archives of `source`, decompressed, with their sums checked when `source` enforces
/// them.
fn read_archives(source: &Source) -> Result<[Idx; 4]> {
    if source.expected.is_some() && !source.dir.is_dir() {
        let tried: Vec<String> = vendored_candidates()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        return Err(Error::Data(format!(
            "the vendored MNIST is not in {}; copy data/mnist of runner's source there, or \
             point RUNNER_MNIST_DIR at a directory holding {}",
            tried.join(" or "),
            FILES.map(|f| format!("{f}.gz")).join(", ")
        )));
    }
    if !source.dir.is_dir() {
        return Err(Error::Data(format!(
            "data directory {} does not exist; it must hold {}",
            source.dir.display(),
            FILES.map(|f| format!("{f}.gz")).join(", ")
        )));
    }
    let path = |i: usize| source.dir.join(format!("{}.gz", FILES[i]));
    // The training images dominate (47 MB decompressed): read them beside the rest.
    let (first, rest) = std::thread::scope(|s| {
        let big = s.spawn(|| idx::read_gz(&path(0), magic(0)));
        let rest: Vec<Result<Idx>> = (1..4).map(|i| idx::read_gz(&path(i), magic(i))).collect();
        (big.join().expect("IDX reader thread panicked"), rest)
    });
    let mut files = vec![first?];
    for r in rest {
        files.push(r?);
    }
    if let Some(expected) = source.expected {
        for (i, f) in files.iter().enumerate() {
            if f.sha256 != expected[i] {
                return Err(Error::Data(format!(
                    "{}: checksum mismatch: SHA-256 of the decompressed content is {}, expected {} \
                     (the vendored MNIST copy is corrupt or was replaced; restore it from git, or set \
                     data.dir to use other data without checksum enforcement)",
                    path(i).display(),
                    f.sha256,
                    expected[i]
                )));
            }
        }
    }
    Ok(files.try_into().expect("four files"))
}

fn make_split(images: Idx, labels: Idx, images_path: &Path, labels_path: &Path) -> Result<Split> {
    if images.dims[1..] != [IMAGE_SIDE, IMAGE_SIDE] {
        return Err(Error::Data(format!(
            "{}: images are {:?}, expected N x {IMAGE_SIDE} x {IMAGE_SIDE}",
            images_path.display(),
            images.dims
        )));
    }
    if images.dims[0] == 0 {
        return Err(Error::Data(format!(
            "{} holds no images; a dataset split needs at least one",
            images_path.display()
        )));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(Error::Data(format!(
            "{} holds {} images but {} holds {} labels; the counts must match",
            images_path.display(),
            images.dims[0],
            labels_path.display(),
            labels.dims[0]
        )));
    }
    if let Some(pos) = labels.data.iter().position(|&l| l as usize >= CLASSES) {
        return Err(Error::Data(format!(
            "{}: label {} at index {pos} is out of range; labels must be 0..={}",
            labels_path.display(),
            labels.data[pos],
            CLASSES - 1
        )));
    }
    Ok(Split {
        images: images.data,
        labels: labels.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn write_idx(dir: &Path, name: &str, magic: u32, dims: &[u32], data: &[u8]) {
        let mut raw = magic.to_be_bytes().to_vec();
        for d in dims {
            raw.extend(d.to_be_bytes());
        }
        raw.extend(data);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&raw).unwrap();
        std::fs::write(dir.join(format!("{name}.gz")), gz.finish().unwrap()).unwrap();
    }

    /// A tiny dataset of `n_train` training images with `n_labels` labels.
    fn tiny(n_train: u32, n_labels: u32, label: u8) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let px = |n: u32| vec![7u8; (n as usize) * IMAGE_PIXELS];
        write_idx(
            dir.path(),
            FILES[0],
            idx::MAGIC_IMAGES,
            &[n_train, 28, 28],
            &px(n_train),
        );
        write_idx(
            dir.path(),
            FILES[1],
            idx::MAGIC_LABELS,
            &[n_labels],
            &vec![label; n_labels as usize],
        );
        write_idx(
            dir.path(),
            FILES[2],
            idx::MAGIC_IMAGES,
            &[2, 28, 28],
            &px(2),
        );
        write_idx(dir.path(), FILES[3], idx::MAGIC_LABELS, &[2], &[1, 2]);
        dir
    }

    fn custom(dir: &Path) -> Source {
        Source {
            dir: dir.to_path_buf(),
            expected: None,
        }
    }

    #[test]
    fn loads_a_custom_directory_and_records_its_checksums() {
        let dir = tiny(3, 3, 9);
        let data = Dataset::load(&custom(dir.path())).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (3, 2));
        assert_eq!(data.checksums.len(), 4);
        let mut img = vec![0.0; IMAGE_PIXELS];
        data.train.write_image(2, &mut img);
        assert!(img.iter().all(|&x| x == 7.0 / 255.0));
        assert_ne!(
            data.digest(),
            Source::for_config(&DataConfig::default())
                .known_digest()
                .unwrap()
        );
    }

    #[test]
    fn inconsistent_counts_and_bad_labels_name_the_files() {
        let dir = tiny(3, 2, 1);
        let msg = Dataset::load(&custom(dir.path())).unwrap_err().to_string();
        assert!(
            msg.contains("3 images") && msg.contains("2 labels") && msg.contains(FILES[1]),
            "{msg}"
        );
        let dir = tiny(3, 3, 10);
        let msg = Dataset::load(&custom(dir.path())).unwrap_err().to_string();
        assert!(msg.contains("label 10") && msg.contains(FILES[1]), "{msg}");
    }

    #[test]
    fn enforced_checksums_reject_other_content() {
        let dir = tiny(3, 3, 1);
        let source = Source {
            dir: dir.path().to_path_buf(),
            expected: Some(MNIST_SHA256),
        };
        let msg = Dataset::load(&source).unwrap_err().to_string();
        assert!(
            msg.contains("checksum mismatch") && msg.contains(FILES[0]),
            "{msg}"
        );
    }

    #[test]
    fn missing_directory_and_files_are_reported() {
        let msg = Dataset::load(&custom(Path::new("/nonexistent/mnist")))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/nonexistent/mnist") && msg.contains("does not exist"),
            "{msg}"
        );
        let dir = tiny(3, 3, 1);
        std::fs::remove_file(dir.path().join(format!("{}.gz", FILES[3]))).unwrap();
        let msg = Dataset::load(&custom(dir.path())).unwrap_err().to_string();
        assert!(msg.contains(FILES[3]) && msg.contains("missing"), "{msg}");
    }

    #[test]
    fn the_vendored_copy_matches_its_readme() {
        let data = Dataset::load(&Source::for_config(&DataConfig::default())).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
        let mut counts = [0usize; 10];
        data.test
            .labels
            .iter()
            .for_each(|&l| counts[l as usize] += 1);
        assert_eq!(
            counts,
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
        let mean = data.train.images.iter().map(|&p| p as f64).sum::<f64>()
            / data.train.images.len() as f64
            / 255.0;
        assert!((mean - 0.1307).abs() < 1e-4, "{mean}");
    }
}
