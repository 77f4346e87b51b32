//! Datasets recognised by their content, so a run on them carries their name even when the
//! experiment file does not give it.
//!
//! The checksums are SHA-256 of the decompressed files, as the run hash uses them, so a
//! recompressed copy (Debian's packages, the vendored MNIST) is recognised as well as the
//! publisher's archives.

use super::mnist::{digest_of, FILES, MNIST_SHA256};

/// `(name, SHA-256 of each decompressed file in FILES order)`.
pub type Known = (&'static str, [&'static str; 4]);

/// The datasets runner names by itself.
pub const KNOWN: [Known; 2] = [
    ("mnist", MNIST_SHA256),
    (
        // Zalando's Fashion-MNIST; the same four sums as Debian's dataset-fashion-mnist gives.
        "fashion-mnist",
        [
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ],
    ),
];

/// The name of the dataset whose digest (`Dataset::digest`) is `digest`, if runner knows it.
pub fn recognise(digest: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(_, sums)| digest_of(FILES.iter().copied().zip(*sums)) == digest)
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_name_their_dataset_and_nothing_else_does() {
        let digest = |sums: [&str; 4]| digest_of(FILES.iter().copied().zip(sums));
        assert_eq!(recognise(&digest(MNIST_SHA256)), Some("mnist"));
        assert_eq!(recognise(&digest(KNOWN[1].1)), Some("fashion-mnist"));
        let mut one_off = KNOWN[1].1;
        one_off[3] = MNIST_SHA256[3];
        assert_eq!(recognise(&digest(one_off)), None);
    }
}
