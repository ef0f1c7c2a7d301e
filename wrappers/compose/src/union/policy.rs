//! rclone's union policies: which upstreams a search, create or action uses.
//!
//! A policy is a *scope* (which upstreams are candidates) and a *criterion*
//! (which candidates it picks):
//!
//! - for searches and actions every policy looks only at upstreams where the
//!   path exists (actions also skip `:ro` upstreams);
//! - for creates, the `ep*` ("existing path") policies and `newest` look only
//!   at upstreams where the parent directory exists, the others at every
//!   upstream that accepts new files (neither `:ro` nor `:nc`).
//!
//! The criterion is the same in every category: `all`/`epall` pick every
//! candidate (searches take the first), `ff`/`epff` the first in configured
//! order, `mfs`/`epmfs` the most free space, `lfs`/`eplfs` the least free
//! space (creates skip upstreams below `min_free_space`), `lus`/`eplus` the
//! least used space, `lno`/`eplno` the fewest objects, `newest` the most
//! recent modification time of the path (the parent directory for creates),
//! `rand`/`eprand` one at random.

use std::fmt;
use std::time::SystemTime;

/// One of the union policies the catalog accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Creates look only where the parent exists (`ep*` and `newest`).
    pub existing_path: bool,
    /// Which candidates the policy picks.
    pub criterion: Criterion,
}

/// How a policy chooses among its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    /// Every candidate (searches take the first).
    All,
    /// The first candidate in configured order.
    First,
    /// The candidate with the most free space (unknown counts as unlimited).
    MostFree,
    /// The candidate with the least free space (unknown counts as unlimited).
    LeastFree,
    /// The candidate with the least used space (unknown counts as none).
    LeastUsed,
    /// The candidate with the fewest objects (unknown counts as none).
    LeastObjects,
    /// The candidate whose path has the latest modification time.
    Newest,
    /// One candidate at random.
    Random,
}

/// What a criterion needs to know about each candidate upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing beyond the candidate's order (or its entry's mtime).
    Nothing,
    /// Free bytes.
    Free,
    /// Used bytes.
    Used,
    /// Number of objects.
    Objects,
}

impl Policy {
    /// Parses a policy name (`ff`, `epmfs`, ...).
    pub fn parse(name: &str) -> Option<Policy> {
        let (existing_path, base) = match name.strip_prefix("ep") {
            Some(base) => (true, base),
            None => (name == "newest", name),
        };
        let criterion = match base {
            "all" => Criterion::All,
            "ff" => Criterion::First,
            "mfs" => Criterion::MostFree,
            "lfs" => Criterion::LeastFree,
            "lus" => Criterion::LeastUsed,
            "lno" => Criterion::LeastObjects,
            "rand" => Criterion::Random,
            "newest" if !name.starts_with("ep") => Criterion::Newest,
            _ => return None,
        };
        Some(Policy {
            existing_path,
            criterion,
        })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = match self.criterion {
            Criterion::All => "all",
            Criterion::First => "ff",
            Criterion::MostFree => "mfs",
            Criterion::LeastFree => "lfs",
            Criterion::LeastUsed => "lus",
            Criterion::LeastObjects => "lno",
            Criterion::Random => "rand",
            Criterion::Newest => return f.write_str("newest"),
        };
        if self.existing_path {
            f.write_str("ep")?;
        }
        f.write_str(base)
    }
}

impl Criterion {
    /// What [`select`] needs in [`Candidate::metric`].
    pub fn need(self) -> Need {
        match self {
            Criterion::MostFree | Criterion::LeastFree => Need::Free,
            Criterion::LeastUsed => Need::Used,
            Criterion::LeastObjects => Need::Objects,
            Criterion::All | Criterion::First | Criterion::Newest | Criterion::Random => {
                Need::Nothing
            }
        }
    }
}

/// An upstream a policy may pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The upstream's position in the configured list.
    pub upstream: usize,
    /// Modification time of the path on that upstream (for `newest`).
    pub modified: Option<SystemTime>,
    /// The figure [`Criterion::need`] asks for, when the upstream knows it.
    pub metric: Option<u64>,
}

/// Picks among `candidates` (in configured order). `min_free` excludes
/// upstreams with less free space from [`Criterion::LeastFree`] (`0` for no
/// threshold); `random` maps a count to an index below it. Ties go to the
/// earlier upstream. Returns upstream positions; empty when no candidate fits.
pub fn select(
    criterion: Criterion,
    candidates: &[Candidate],
    min_free: u64,
    random: impl FnOnce(usize) -> usize,
) -> Vec<usize> {
    let all = candidates.iter();
    match criterion {
        Criterion::All => all.map(|c| c.upstream).collect(),
        Criterion::First => all.take(1).map(|c| c.upstream).collect(),
        Criterion::MostFree => best(all, |c| c.metric.unwrap_or(u64::MAX), true),
        Criterion::LeastFree => best(
            all.filter(|c| c.metric.is_none_or(|free| free >= min_free)),
            |c| c.metric.unwrap_or(u64::MAX),
            false,
        ),
        Criterion::LeastUsed | Criterion::LeastObjects => {
            best(all, |c| c.metric.unwrap_or(0), false)
        }
        Criterion::Newest => best(all, |c| c.modified, true),
        Criterion::Random if candidates.is_empty() => Vec::new(),
        Criterion::Random => {
            let i = random(candidates.len()).min(candidates.len() - 1);
            vec![candidates[i].upstream]
        }
    }
}

/// The upstream with the greatest (`most`) or smallest key; the first wins ties.
fn best<'a, K: Ord>(
    candidates: impl Iterator<Item = &'a Candidate>,
    key: impl Fn(&Candidate) -> K,
    most: bool,
) -> Vec<usize> {
    let mut winner: Option<(K, usize)> = None;
    for c in candidates {
        let k = key(c);
        let better = match &winner {
            None => true,
            Some((b, _)) if most => k > *b,
            Some((b, _)) => k < *b,
        };
        if better {
            winner = Some((k, c.upstream));
        }
    }
    winner.map(|(_, u)| vec![u]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NAMES: [&str; 15] = [
        "all", "epall", "epff", "eplfs", "eplno", "eplus", "epmfs", "eprand", "ff", "lfs", "lno",
        "lus", "mfs", "newest", "rand",
    ];

    fn cand(upstream: usize, metric: Option<u64>) -> Candidate {
        Candidate {
            upstream,
            modified: None,
            metric,
        }
    }

    #[test]
    fn parses_every_catalog_policy_and_round_trips() {
        for name in NAMES {
            let p = Policy::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(p.to_string(), name);
            assert_eq!(
                p.existing_path,
                name.starts_with("ep") || name == "newest",
                "{name}"
            );
        }
        for bad in ["", "ep", "epnewest", "mfs2", "FF"] {
            assert_eq!(Policy::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn all_and_first() {
        let c = [cand(2, None), cand(0, None), cand(5, None)];
        assert_eq!(select(Criterion::All, &c, 0, |_| 0), vec![2, 0, 5]);
        assert_eq!(select(Criterion::First, &c, 0, |_| 0), vec![2]);
        assert!(select(Criterion::First, &[], 0, |_| 0).is_empty());
    }

    #[test]
    fn free_space_unknown_is_unlimited() {
        let c = [cand(0, Some(10)), cand(1, Some(30)), cand(2, Some(30))];
        assert_eq!(select(Criterion::MostFree, &c, 0, |_| 0), vec![1]);
        assert_eq!(select(Criterion::LeastFree, &c, 0, |_| 0), vec![0]);
        let unknown = [cand(0, Some(10)), cand(1, None)];
        assert_eq!(select(Criterion::MostFree, &unknown, 0, |_| 0), vec![1]);
        assert_eq!(select(Criterion::LeastFree, &unknown, 0, |_| 0), vec![0]);
        // All unknown: the first.
        let none = [cand(3, None), cand(4, None)];
        assert_eq!(select(Criterion::MostFree, &none, 0, |_| 0), vec![3]);
        assert_eq!(select(Criterion::LeastFree, &none, 0, |_| 0), vec![3]);
    }

    #[test]
    fn least_free_skips_upstreams_below_min_free() {
        let c = [cand(0, Some(5)), cand(1, Some(20)), cand(2, Some(50))];
        assert_eq!(select(Criterion::LeastFree, &c, 20, |_| 0), vec![1]);
        assert_eq!(select(Criterion::LeastFree, &c, 21, |_| 0), vec![2]);
        assert!(select(Criterion::LeastFree, &c, 51, |_| 0).is_empty());
        // Unknown free space passes any threshold.
        let u = [cand(0, Some(5)), cand(1, None)];
        assert_eq!(select(Criterion::LeastFree, &u, 10, |_| 0), vec![1]);
        // The threshold only concerns lfs.
        assert_eq!(select(Criterion::MostFree, &c, 1000, |_| 0), vec![2]);
    }

    #[test]
    fn least_used_and_fewest_objects_treat_unknown_as_zero() {
        let c = [cand(0, Some(100)), cand(1, Some(7)), cand(2, Some(7))];
        assert_eq!(select(Criterion::LeastUsed, &c, 0, |_| 0), vec![1]);
        assert_eq!(select(Criterion::LeastObjects, &c, 0, |_| 0), vec![1]);
        let u = [cand(0, Some(1)), cand(1, None)];
        assert_eq!(select(Criterion::LeastUsed, &u, 0, |_| 0), vec![1]);
    }

    #[test]
    fn newest_by_mtime() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = [
            Candidate {
                upstream: 0,
                modified: None,
                metric: None,
            },
            Candidate {
                upstream: 1,
                modified: Some(t),
                metric: None,
            },
            Candidate {
                upstream: 2,
                modified: Some(t + Duration::from_secs(1)),
                metric: None,
            },
            Candidate {
                upstream: 3,
                modified: Some(t),
                metric: None,
            },
        ];
        assert_eq!(select(Criterion::Newest, &c, 0, |_| 0), vec![2]);
        assert_eq!(select(Criterion::Newest, &c[..2], 0, |_| 0), vec![1]);
        assert_eq!(select(Criterion::Newest, &c[..1], 0, |_| 0), vec![0]);
    }

    #[test]
    fn random_uses_the_generator() {
        let c = [cand(4, None), cand(6, None), cand(9, None)];
        assert_eq!(select(Criterion::Random, &c, 0, |n| n - 1), vec![9]);
        assert_eq!(select(Criterion::Random, &c, 0, |_| 1), vec![6]);
        assert!(select(Criterion::Random, &[], 0, |_| 0).is_empty());
    }
}
