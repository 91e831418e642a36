//! String interning with a fast non-cryptographic hash (`rustc-hash`'s FxHash: fast on short keys,
//! not DoS-resistant, fine for local files), used to number users, items and sessions while
//! reading logs.

use rustc_hash::{FxHashMap, FxHasher};
use std::hash::Hasher;

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
/// users stay two sessions. Looks up by a 64-bit hash of the key without allocating; names are
/// compared on a hash match, and the rare colliding keys go to a second, exact map.
#[derive(Default, Debug)]
pub struct SessionInterner {
    by_hash: FxHashMap<u64, u32>,
    collided: FxHashMap<(u32, Box<[u8]>), u32>,
    users: Vec<u32>,
    names: Vec<String>,
}

impl SessionInterner {
    /// The number of session `name` of `user`, assigning the next one if it is new.
    #[inline]
    pub fn id(&mut self, user: u32, name: &[u8]) -> u32 {
        let mut h = FxHasher::default();
        h.write_u32(user);
        h.write(name);
        h.write_usize(name.len());
        let hash = h.finish();
        let next = self.names.len() as u32;
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(next);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                let id = *o.get();
                if self.users[id as usize] == user && self.names[id as usize].as_bytes() == name {
                    return id;
                }
                if let Some(&id) = self.collided.get(&(user, Box::from(name))) {
                    return id;
                }
                self.collided.insert((user, Box::from(name)), next);
            }
        }
        self.users.push(user);
        self.names.push(String::from_utf8_lossy(name).into_owned());
        next
    }

    /// The session names, indexed by their numbers.
    pub fn into_names(self) -> Vec<String> {
        self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_per_user_and_stable() {
        let mut s = SessionInterner::default();
        assert_eq!(s.id(0, b"a"), 0);
        assert_eq!(s.id(1, b"a"), 1);
        assert_eq!(s.id(0, b"b"), 2);
        assert_eq!(s.id(0, b"a"), 0);
        assert_eq!(s.id(1, b"a"), 1);
        // Force the collision path: a key whose hash slot holds another key.
        let mut s = SessionInterner::default();
        let first = s.id(0, b"x");
        let h = *s.by_hash.keys().next().unwrap();
        s.by_hash.insert(h, first);
        s.users[0] = 9; // pretend slot `h` belongs to another key
        assert_eq!(s.id(0, b"x"), 1);
        assert_eq!(s.id(0, b"x"), 1);
        assert_eq!(s.into_names(), vec!["x", "x"]);
    }
}
