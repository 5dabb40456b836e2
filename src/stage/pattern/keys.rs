//! The pattern stage's keys: each key's state lives in a numbered slot, found
//! by the key's bytes through a hash table once, when an event comes in.
//! Everything that refers to a key afterwards (its buffered events, its
//! attempt's deadline) holds the slot's number, so following a key costs
//! neither hashing nor comparing its bytes. A freed slot is used again by
//! the next new key; its bytes (`Slot::key`) tell an old reference from a
//! current one (`Rc::ptr_eq`).

use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::rc::Rc;

/// One key's slot.
pub struct Slot<T> {
    /// The key's bytes, shared with whatever needs them in order (the
    /// deadlines, ordered by time and then key).
    pub key: Rc<[u8]>,
    hash: u64,
    pub value: T,
}

/// Key states by slot number, and a hash index from the key's bytes.
pub struct Slab<T> {
    index: HashTable<u32>,
    slots: Vec<Option<Slot<T>>>,
    free: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl<T> Slab<T> {
    /// The slot of `key`, made with `new()` if the key is not held; `true`
    /// when it was made.
    pub fn find_or_insert(&mut self, key: &[u8], new: impl FnOnce() -> T) -> (u32, bool) {
        let hash = self.hasher.hash_one(key);
        let slots = &mut self.slots;
        let entry = self.index.entry(
            hash,
            |&i| slots[i as usize].as_ref().is_some_and(|s| *s.key == *key),
            |&i| slots[i as usize].as_ref().map_or(0, |s| s.hash),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(o) => (*o.get(), false),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let slot = Slot {
                    key: Rc::from(key),
                    hash,
                    value: new(),
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        slots[i as usize] = Some(slot);
                        i
                    }
                    None => {
                        slots.push(Some(slot));
                        (slots.len() - 1) as u32
                    }
                };
                v.insert(i);
                (i, true)
            }
        }
    }

    pub fn get(&self, i: u32) -> Option<&Slot<T>> {
        self.slots.get(i as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut Slot<T>> {
        self.slots.get_mut(i as usize)?.as_mut()
    }

    /// The slot `i`, which is held (a caller's invariant).
    pub fn held(&mut self, i: u32) -> &mut Slot<T> {
        self.get_mut(i).expect("a key that is referred to is held")
    }

    /// Frees slot `i` (held), giving back what it held.
    pub fn remove(&mut self, i: u32) -> Slot<T> {
        let slot = self.slots[i as usize].take().expect("a held slot");
        if let Ok(entry) = self.index.find_entry(slot.hash, |&j| j == i) {
            entry.remove();
        }
        self.free.push(i);
        slot
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Every held slot, with its number, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Slot<T>)> {
        (self.slots.iter().enumerate()).filter_map(|(i, s)| Some((i as u32, s.as_ref()?)))
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_found_by_key_and_reused_once_freed() {
        let mut slab: Slab<u32> = Slab::default();
        let (a, new_a) = slab.find_or_insert(b"a", || 1);
        let (b, new_b) = slab.find_or_insert(b"b", || 2);
        assert!(new_a && new_b && a != b);
        assert_eq!(slab.find_or_insert(b"a", || 9), (a, false));
        assert_eq!(slab.len(), 2);
        let gone = slab.remove(a);
        assert_eq!((&*gone.key, gone.value), (&b"a"[..], 1));
        assert!(slab.get(a).is_none());
        assert_eq!(slab.len(), 1);
        // The freed slot goes to the next new key; the old key is new again.
        let (c, _) = slab.find_or_insert(b"c", || 3);
        assert_eq!(c, a);
        let (a2, new) = slab.find_or_insert(b"a", || 4);
        assert!(new && a2 != a);
        assert_eq!(slab.get(b).map(|s| s.value), Some(2));
        let mut held: Vec<_> = slab.iter().map(|(_, s)| s.key.to_vec()).collect();
        held.sort();
        assert_eq!(held, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn many_keys_survive_the_table_growing() {
        let mut slab: Slab<usize> = Slab::default();
        let slots: Vec<u32> = (0..10_000)
            .map(|i| slab.find_or_insert(format!("k{i}").as_bytes(), || i).0)
            .collect();
        for (i, &s) in slots.iter().enumerate().step_by(3) {
            assert_eq!(slab.remove(s).value, i);
        }
        for (i, &s) in slots.iter().enumerate() {
            let found = slab.find_or_insert(format!("k{i}").as_bytes(), || usize::MAX);
            if i % 3 == 0 {
                assert!(found.1);
            } else {
                assert_eq!(found, (s, false));
            }
        }
    }
}
