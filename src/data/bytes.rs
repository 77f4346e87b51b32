//! Bytes owned or mapped from a file, shared without copying: a dataset split read from the
//! decoded cache points into the cache file's mapping, one read from the archives owns its
//! buffer, and training reads both as `&[u8]`.

use std::ops::Deref;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Bytes {
    store: Arc<Store>,
    start: usize,
    len: usize,
}

enum Store {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Default for Store {
    fn default() -> Store {
        Store::Owned(Vec::new())
    }
}

impl Store {
    fn bytes(&self) -> &[u8] {
        match self {
            Store::Owned(v) => v,
            Store::Mapped(m) => m,
        }
    }
}

impl Bytes {
    /// The whole of `map`; [`Bytes::slice`] takes parts of it, and the last part dropped unmaps it.
    pub fn mapped(map: memmap2::Mmap) -> Bytes {
        let len = map.len();
        Bytes {
            store: Arc::new(Store::Mapped(map)),
            start: 0,
            len,
        }
    }

    /// `len` bytes from `start` of these, sharing their storage; panics outside them.
    pub fn slice(&self, start: usize, len: usize) -> Bytes {
        assert!(start.checked_add(len).is_some_and(|end| end <= self.len));
        Bytes {
            store: Arc::clone(&self.store),
            start: self.start + start,
            len,
        }
    }

    /// Whether these bytes live in a file mapping (the decoded cache) rather than on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(*self.store, Store::Mapped(_))
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        let len = v.len();
        Bytes {
            store: Arc::new(Store::Owned(v)),
            start: 0,
            len,
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.store.bytes()[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bytes({} bytes{})",
            self.len,
            if self.is_mapped() { ", mapped" } else { "" }
        )
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}
