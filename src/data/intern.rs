//! String interning with a fast non-cryptographic hash (FxHash), used to number users, items
//! and sessions while reading logs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The FxHash function (rustc's): fast on short keys, not DoS-resistant (fine for local files).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` using [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Numbers distinct strings 0, 1, 2, ... in order of first appearance.
#[derive(Default, Debug)]
pub struct Interner {
    map: FxHashMap<Box<[u8]>, u32>,
    names: Vec<String>,
}

impl Interner {
    /// The number of `key`, assigning the next one if it is new.
    #[inline]
    pub fn id(&mut self, key: &[u8]) -> u32 {
        if let Some(&i) = self.map.get(key) {
            return i;
        }
        let i = self.names.len() as u32;
        self.map.insert(key.into(), i);
        self.names.push(String::from_utf8_lossy(key).into_owned());
        i
    }

    /// The strings, indexed by their numbers.
    pub fn into_names(self) -> Vec<String> {
        self.names
    }

    /// How many distinct strings so far.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Numbers sessions, keyed by (user number, session name) so that equal session names of two
/// users stay two sessions.
#[derive(Default, Debug)]
pub struct SessionInterner {
    map: FxHashMap<(u32, Box<[u8]>), u32>,
    names: Vec<String>,
}

impl SessionInterner {
    /// The number of session `name` of `user`, assigning the next one if it is new.
    #[inline]
    pub fn id(&mut self, user: u32, name: &[u8]) -> u32 {
        let key = (user, Box::<[u8]>::from(name));
        let next = self.names.len() as u32;
        let id = *self.map.entry(key).or_insert(next);
        if id == next {
            self.names.push(String::from_utf8_lossy(name).into_owned());
        }
        id
    }

    /// The session names, indexed by their numbers.
    pub fn into_names(self) -> Vec<String> {
        self.names
    }
}
