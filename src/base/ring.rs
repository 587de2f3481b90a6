//! A bounded ring buffer: the newest `cap` items, oldest dropped first. Every log the
//! dashboard keeps (a diff's nix output, an upgrade's event log, a node's command output) is
//! one, so no buffer grows without bound.

use std::collections::VecDeque;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
}

impl<T> Ring<T> {
    /// An empty ring that keeps at most `cap` items (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Append an item, dropping the oldest when full.
    pub fn push(&mut self, item: T) {
        if self.items.len() >= self.cap {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// The oldest item kept.
    pub fn front(&self) -> Option<&T> {
        self.items.front()
    }

    /// The newest item.
    pub fn back(&self) -> Option<&T> {
        self.items.back()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    /// The newest `n` items, oldest of them first (a log's visible tail).
    pub fn tail(&self, n: usize) -> impl Iterator<Item = &T> {
        self.items.iter().skip(self.items.len().saturating_sub(n))
    }
}

impl<'a, T> IntoIterator for &'a Ring<T> {
    type Item = &'a T;
    type IntoIter = std::collections::vec_deque::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// A sequence, oldest first (the cap is configuration, not data).
impl<T: Serialize> Serialize for Ring<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.items.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_drops_the_oldest() {
        let mut r = Ring::new(3);
        assert!(r.is_empty());
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!((r.front(), r.back()), (Some(&2), Some(&4)));
        assert_eq!(r.tail(2).copied().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(r.tail(10).count(), 3);
        assert_eq!(serde_json::to_string(&r).unwrap(), "[2,3,4]");
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.capacity(), 3);
    }

    #[test]
    fn a_zero_cap_still_keeps_the_last_item() {
        let mut r = Ring::new(0);
        r.push("a");
        r.push("b");
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![&"b"]);
    }
}
