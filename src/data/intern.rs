//! String interning with a fast non-cryptographic hash (`rustc-hash`'s FxHash: fast on short keys,
//! not DoS-resistant, fine for local files), used to number users, items and sessions while
//! reading logs.

use rustc_hash::{FxHashMap, FxHasher};
use std::hash::Hasher;

/// An id that is not valid UTF-8. Ids are kept as text (and written to JSON, as the vocabulary),
/// so such an id is refused rather than replaced with U+FFFD, which would merge distinct ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotUtf8 {
    /// The id with its non-ASCII bytes escaped (`\xff`).
    pub escaped: String,
    /// Offset of the first invalid byte in the id.
    pub at: usize,
}

impl std::fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the id `{}` is not valid UTF-8 (invalid byte at offset {} of the id); ids must be \
             UTF-8 text",
            self.escaped, self.at
        )
    }
}

/// `key` as text, or why it is not.
fn utf8(key: &[u8]) -> Result<&str, NotUtf8> {
    std::str::from_utf8(key).map_err(|e| NotUtf8 {
        escaped: key.escape_ascii().to_string(),
        at: e.valid_up_to(),
    })
}

/// Numbers distinct strings 0, 1, 2, ... in order of first appearance. Looks up by a 64-bit
/// hash of the key without allocating (one allocation per distinct string, its name); names are
/// compared on a hash match, and the rare colliding keys go to a second, exact map.
#[derive(Default, Debug)]
pub struct Interner {
    by_hash: FxHashMap<u64, u32>,
    collided: FxHashMap<Box<[u8]>, u32>,
    names: Vec<String>,
}

impl Interner {
    /// The number of `key`, assigning the next one if it is new; an error if it is new and not
    /// UTF-8.
    #[inline]
    pub fn id(&mut self, key: &[u8]) -> Result<u32, NotUtf8> {
        match self.find(key) {
            Ok(i) => Ok(i),
            Err((hash, collision)) => Ok(self.insert(hash, collision, utf8(key)?.to_owned())),
        }
    }

    /// The number of `key`, if it was interned.
    pub fn lookup(&self, key: &[u8]) -> Option<u32> {
        self.find(key).ok()
    }

    /// The number of `key`, or its hash and whether that hash is taken by another key.
    #[inline]
    fn find(&self, key: &[u8]) -> Result<u32, (u64, bool)> {
        let mut h = FxHasher::default();
        h.write(key);
        h.write_usize(key.len());
        let hash = h.finish();
        match self.by_hash.get(&hash) {
            None => Err((hash, false)),
            Some(&id) if self.names[id as usize].as_bytes() == key => Ok(id),
            Some(_) => self.collided.get(key).copied().ok_or((hash, true)),
        }
    }

    fn insert(&mut self, hash: u64, collision: bool, name: String) -> u32 {
        let i = self.names.len() as u32;
        if collision {
            self.collided.insert(name.as_bytes().into(), i);
        } else {
            self.by_hash.insert(hash, i);
        }
        self.names.push(name);
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

/// Sessions of one user kept beside it in [`SessionInterner`].
const INLINE: usize = 2;

/// A slot of [`Beside`] that holds no session.
const FREE: u32 = u32::MAX;

/// A user's first [`INLINE`] sessions: the hash of each name and its number ([`FREE`] where
/// unused; slots fill in order). Half a cache line, so one read brings a user's usual sessions.
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
struct Beside([(u64, u32); INLINE]);

impl Default for Beside {
    fn default() -> Self {
        Beside([(0, FREE); INLINE])
    }
}

/// Where a session that is not interned would go.
enum Slot {
    /// Slot `k` of the user's [`Beside`], with the name's hash.
    Beside(usize, u64),
    /// The map of further sessions: the key's hash and whether another key holds it.
    Further(u64, bool),
}

/// Numbers sessions, keyed by (user number, session name) so that equal session names of two
/// users stay two sessions. A user's first [`INLINE`] sessions are kept beside the user, found by
/// the hash of the name (most users have no more, so a look-up reads one record and, for a
/// session seen before, its name); further ones go to a map by a 64-bit hash of the key. Names
/// are compared on a hash match, and the rare colliding keys of the map go to a second, exact
/// one. Nothing allocates but the name of a new session.
#[derive(Default, Debug)]
pub struct SessionInterner {
    beside: Vec<Beside>,
    by_hash: FxHashMap<u64, u32>,
    collided: FxHashMap<(u32, Box<[u8]>), u32>,
    users: Vec<u32>,
    names: Vec<String>,
}

impl SessionInterner {
    /// The number of session `name` of `user`, assigning the next one if it is new; an error if
    /// it is new and not UTF-8.
    #[inline]
    pub fn id(&mut self, user: u32, name: &[u8]) -> Result<u32, NotUtf8> {
        match self.find(user, name) {
            Ok(i) => Ok(i),
            Err(slot) => Ok(self.insert(slot, user, utf8(name)?.to_owned())),
        }
    }

    /// The number of session `name` of `user`, if it was interned.
    pub fn lookup(&self, user: u32, name: &[u8]) -> Option<u32> {
        self.find(user, name).ok()
    }

    /// The number of the session, or where it would go.
    #[inline]
    fn find(&self, user: u32, name: &[u8]) -> Result<u32, Slot> {
        let mut h = FxHasher::default();
        h.write(name);
        h.write_usize(name.len());
        let name_hash = h.finish();
        let beside = self.beside.get(user as usize).copied().unwrap_or_default();
        for (k, &(hash, id)) in beside.0.iter().enumerate() {
            if id == FREE {
                return Err(Slot::Beside(k, name_hash));
            }
            if hash == name_hash && self.names[id as usize].as_bytes() == name {
                return Ok(id);
            }
        }
        let mut h = FxHasher::default();
        h.write_u32(user);
        h.write_u64(name_hash);
        let hash = h.finish();
        match self.by_hash.get(&hash) {
            None => Err(Slot::Further(hash, false)),
            Some(&id)
                if self.users[id as usize] == user
                    && self.names[id as usize].as_bytes() == name =>
            {
                Ok(id)
            }
            Some(_) => (self.collided.get(&(user, Box::from(name))).copied())
                .ok_or(Slot::Further(hash, true)),
        }
    }

    fn insert(&mut self, slot: Slot, user: u32, name: String) -> u32 {
        let next = self.names.len() as u32;
        match slot {
            Slot::Beside(k, hash) => {
                let u = user as usize;
                if self.beside.len() <= u {
                    self.beside.resize(u + 1, Beside::default());
                }
                self.beside[u].0[k] = (hash, next);
            }
            Slot::Further(hash, false) => {
                self.by_hash.insert(hash, next);
            }
            Slot::Further(_, true) => {
                self.collided.insert((user, name.as_bytes().into()), next);
            }
        }
        self.users.push(user);
        self.names.push(name);
        next
    }

    /// The session names, indexed by their numbers.
    pub fn into_names(self) -> Vec<String> {
        self.names
    }

    /// The user number and the name of every session, in session-number order.
    pub fn into_parts(self) -> (Vec<u32>, Vec<String>) {
        (self.users, self.names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_per_user_and_stable() {
        let mut s = SessionInterner::default();
        let mut id = |u, n: &[u8]| s.id(u, n).unwrap();
        assert_eq!(id(0, b"a"), 0);
        assert_eq!(id(1, b"a"), 1);
        assert_eq!(id(0, b"b"), 2);
        assert_eq!(id(0, b"a"), 0);
        assert_eq!(id(1, b"a"), 1);
        assert_eq!(id(0, b"c"), 3);
        assert_eq!(id(0, b"d"), 4);
        assert_eq!(id(1, b"b"), 5);
        for (u, n, want) in [
            (0, b"a", 0),
            (0, b"b", 2),
            (0, b"c", 3),
            (0, b"d", 4),
            (1, b"b", 5),
        ] {
            assert_eq!(id(u, n), want);
        }
        assert_eq!(s.into_names(), vec!["a", "a", "b", "c", "d", "b"]);
    }

    /// Sessions beside the user whose name hashes are equal, and further sessions whose map
    /// slot holds another key, keep distinct numbers.
    #[test]
    fn sessions_keep_their_numbers_through_hash_collisions() {
        let mut s = SessionInterner::default();
        assert_eq!(s.id(0, b"x"), Ok(0));
        assert_eq!(s.id(0, b"y"), Ok(1));
        // `x` beside `y` with `y`'s hash: a look-up of `y` passes over it.
        s.beside[0].0[0].0 = s.beside[0].0[1].0;
        assert_eq!(s.id(0, b"y"), Ok(1));
        // Further sessions: `z` in the map, then a key whose map slot is `z`'s.
        assert_eq!(s.id(0, b"z"), Ok(2));
        let h = *s.by_hash.keys().next().unwrap();
        s.users[2] = 9; // pretend slot `h` belongs to another user's key
        assert_eq!(s.id(0, b"z"), Ok(3));
        assert_eq!(s.id(0, b"z"), Ok(3));
        assert_eq!(s.by_hash.get(&h), Some(&2));
        assert_eq!(s.id(0, b"w"), Ok(4));
        assert_eq!(s.lookup(0, b"w"), Some(4));
        assert_eq!(s.lookup(0, b"v"), None);
        assert_eq!(s.lookup(7, b"x"), None);
        assert_eq!(s.into_names(), vec!["x", "y", "z", "z", "w"]);
    }

    #[test]
    fn strings_keep_their_numbers_through_hash_collisions() {
        let mut i = Interner::default();
        assert_eq!(i.id(b"a"), Ok(0));
        assert_eq!(i.id(b"b"), Ok(1));
        assert_eq!(i.id(b"a"), Ok(0));
        // Force the collision path: `c`'s hash slot holds another string's number.
        let mut h = FxHasher::default();
        h.write(b"c");
        h.write_usize(1);
        i.by_hash.insert(h.finish(), 1);
        assert_eq!(i.id(b"c"), Ok(2));
        assert_eq!(i.id(b"c"), Ok(2));
        assert_eq!(i.id(b"b"), Ok(1));
        assert_eq!(i.len(), 3);
        assert_eq!(i.into_names(), vec!["a", "b", "c"]);
    }

    #[test]
    fn ids_that_are_not_utf8_are_refused() {
        let mut i = Interner::default();
        assert_eq!(i.id("é".as_bytes()), Ok(0));
        // Two ids that U+FFFD replacement would merge into one.
        for (key, escaped, at) in [
            (&b"ab\xff"[..], "ab\\xff", 2),
            (b"ab\xfe", "ab\\xfe", 2),
            (b"\xc3", "\\xc3", 0),
        ] {
            let want = NotUtf8 {
                escaped: escaped.to_string(),
                at,
            };
            assert_eq!(i.id(key), Err(want.clone()));
            assert_eq!(SessionInterner::default().id(0, key), Err(want));
        }
        assert_eq!(i.into_names(), vec!["é"]);
    }
}
