//! A set of byte ranges: which parts of a file the sparse cache holds.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent half-open ranges `[start, end)`, kept merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    /// start -> end
    ranges: BTreeMap<u64, u64>,
    total: u64,
}

impl RangeSet {
    /// Bytes covered.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Adds `[start, end)`, merging with neighbours.
    pub(crate) fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // The range starting at or before `start` may overlap or touch.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.ranges.remove(&s);
                self.total -= e - s;
            }
        }
        // Ranges starting inside or touching the new one are absorbed.
        while let Some((&s, &e)) = self.ranges.range(start..=end).next() {
            end = end.max(e);
            self.ranges.remove(&s);
            self.total -= e - s;
        }
        self.ranges.insert(start, end);
        self.total += end - start;
    }

    /// Removes everything at or after `at`.
    pub(crate) fn truncate(&mut self, at: u64) {
        let tail: Vec<u64> = self.ranges.range(at..).map(|(&s, _)| s).collect();
        for s in tail {
            let e = self.ranges.remove(&s).unwrap_or(s);
            self.total -= e - s;
        }
        if let Some((&s, e)) = self.ranges.range_mut(..at).next_back() {
            if *e > at {
                self.total -= *e - at;
                *e = at;
            }
            debug_assert!(s < at);
        }
    }

    /// Removes everything.
    pub(crate) fn clear(&mut self) {
        self.ranges.clear();
        self.total = 0;
    }

    /// The parts of `[start, end)` not covered, in order.
    pub(crate) fn missing(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let mut at = start;
        if let Some((_, &e)) = self.ranges.range(..=start).next_back() {
            at = at.max(e);
        }
        for (&s, &e) in self.ranges.range(start..end) {
            if s > at {
                out.push((at, s));
            }
            at = at.max(e);
        }
        if at < end {
            out.push((at, end));
        }
        out
    }

    /// Whether `[start, end)` is fully covered.
    pub(crate) fn contains(&self, start: u64, end: u64) -> bool {
        start >= end
            || self
                .ranges
                .range(..=start)
                .next_back()
                .is_some_and(|(_, &e)| e >= end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_and_counts() {
        let mut r = RangeSet::default();
        r.insert(10, 20);
        r.insert(30, 40);
        assert_eq!(r.total(), 20);
        assert_eq!(r.missing(0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        r.insert(20, 30);
        assert_eq!(r.total(), 30);
        assert!(r.contains(10, 40));
        assert!(!r.contains(9, 40));
        r.insert(5, 45);
        assert_eq!(r.total(), 40);
        assert_eq!(r.missing(0, 50), vec![(0, 5), (45, 50)]);
        r.insert(0, 1);
        assert_eq!(r.missing(0, 50), vec![(1, 5), (45, 50)]);
        assert!(r.missing(2, 2).is_empty());
        assert!(r.missing(60, 50).is_empty());
    }

    #[test]
    fn truncate_cuts_ranges() {
        let mut r = RangeSet::default();
        r.insert(0, 10);
        r.insert(20, 30);
        r.truncate(25);
        assert_eq!(r.total(), 15);
        assert_eq!(r.missing(0, 30), vec![(10, 20), (25, 30)]);
        r.truncate(5);
        assert_eq!(r.total(), 5);
        r.truncate(0);
        assert_eq!(r.total(), 0);
        r.insert(3, 4);
        r.clear();
        assert_eq!(r.total(), 0);
    }
}
