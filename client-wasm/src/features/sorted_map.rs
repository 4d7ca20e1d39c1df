//! A map from strings, kept as a sorted `Vec`: the few entries the features hold (members of a
//! channel, badge categories) need no tree, and BTreeMap's code costs the wasm about 15 KB.

use crate::prelude::*;

/// String keys in order, each once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SortedMap<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for SortedMap<V> {
    fn default() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }
}

impl<V> SortedMap<V> {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub(crate) fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(core::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// The value of `key`, inserting `value` first when absent.
    pub(crate) fn get_or_insert(&mut self, key: &str, value: V) -> &mut V {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key.to_owned(), value));
                i
            }
        };
        &mut self.entries[i].1
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<'a, V> IntoIterator for &'a SortedMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = core::iter::Map<
        core::slice::Iter<'a, (String, V)>,
        fn(&'a (String, V)) -> (&'a String, &'a V),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_keys_sorted_and_unique() {
        let mut map = SortedMap::default();
        for (key, value) in [("b", 1), ("a", 2), ("b", 3)] {
            map.insert(key.to_owned(), value);
        }
        assert_eq!(
            map.iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            [("a", 2), ("b", 3)]
        );
        assert_eq!(map.insert("c".into(), 4), None);
        assert_eq!(map.insert("a".into(), 5), Some(2));
        *map.get_or_insert("0", 0) += 7;
        assert_eq!(map.get("0"), Some(&7));
        assert_eq!(map.remove("b"), Some(3));
        assert_eq!(map.remove("b"), None);
        assert_eq!(map.values().copied().collect::<Vec<_>>(), [7, 5, 4]);
        map.clear();
        assert!(map.is_empty());
    }
}
