//! MNIST-format datasets: four gzip IDX files, 28x28 unsigned-byte images, labels 0..9.

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
#[derive(Debug, Clone)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
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

/// The vendored copy: `$RUNNER_MNIST_DIR`, else `data/mnist` of this source tree, else
/// `data/mnist` under the current directory.
pub fn vendored_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNNER_MNIST_DIR") {
        return PathBuf::from(dir);
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if built_in.is_dir() {
        built_in
    } else {
        PathBuf::from("data/mnist")
    }
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
    pub fn load(source: &Source) -> Result<Dataset> {
        if !source.dir.is_dir() {
            return Err(Error::Data(format!(
                "data directory {} does not exist; it must hold {}",
                source.dir.display(),
                FILES.map(|f| format!("{f}.gz")).join(", ")
            )));
        }
        let path = |i: usize| source.dir.join(format!("{}.gz", FILES[i]));
        let magic = |i: usize| {
            if i % 2 == 0 {
                idx::MAGIC_IMAGES
            } else {
                idx::MAGIC_LABELS
            }
        };
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
            dir: source.dir.clone(),
            checksums,
        })
    }

    pub fn digest(&self) -> String {
        digest_of(self.checksums.iter().map(|(f, s)| (f.as_str(), s.as_str())))
    }
}

fn make_split(images: Idx, labels: Idx, images_path: &Path, labels_path: &Path) -> Result<Split> {
    if images.dims[1..] != [IMAGE_SIDE, IMAGE_SIDE] {
        return Err(Error::Data(format!(
            "{}: images are {:?}, expected N x {IMAGE_SIDE} x {IMAGE_SIDE}",
            images_path.display(),
            images.dims
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
