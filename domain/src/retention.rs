//! Retention "what-if": which snapshots a [`RetentionPolicy`] keeps and which it removes,
//! computed exactly as `restic forget` (0.14) does, so the product can show the outcome of a
//! policy before it is saved.
//!
//! This is a port of restic's `ApplyPolicy` (`internal/restic/snapshot_policy.go`) and its
//! duration parser (`internal/restic/duration.go`):
//!
//! - Our forget runs `forget --tag <group> --group-by host,tags`, so [`what_if`] takes the
//!   snapshots carrying the tag and groups them by hostname and *sorted* tag list (restic
//!   sorts the tags for the group key; duplicates stay). Each group is decided on its own.
//! - In a group, snapshots are sorted newest first (a stable sort on the instant). Each rule
//!   (`last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`) has a counter and the bucket
//!   value of the last snapshot it kept: a snapshot is kept by a rule while the counter is
//!   above zero and its bucket differs from that last value; the counter then drops by one.
//!   Buckets: `last` = position in the list (every snapshot is its own bucket), `hourly` =
//!   `YYYYMMDDHH`, `daily` = `YYYYMMDD`, `weekly` = ISO week year × 100 + ISO week,
//!   `monthly` = `YYYYMM`, `yearly` = `YYYY`.
//! - `keep_within` keeps every snapshot strictly after *newest − duration*, where *newest* is
//!   the newest snapshot of the group dated before "now" (the edge hands "now" in through
//!   [`what_if_at`]; [`what_if`] assumes none is in the future; when all of them are,
//!   restic counts back from Go's zero time, so keep_within keeps them all). The
//!   subtraction is Go's `AddDate(-y, -m, -d)` followed by `Add(-h hours)`: calendar
//!   arithmetic with overflow normalised (31 March − 1m = 31 February = 3 March, or 2 March
//!   in a leap year).
//! - A snapshot is kept when any rule keeps it; its reasons are listed in restic's order
//!   (`within …` first, then the buckets). A policy without any effective rule keeps
//!   everything ("policy is empty"); restic 0.14's forget then removes nothing either ("No
//!   policy was specified, no snapshots will be removed"), and our agent refuses to run it.
//!
//! **Time zones.** restic computes the buckets from the snapshot's wall-clock time in the
//! offset recorded in the snapshot (Go keeps the parsed offset), not in UTC and not in the
//! zone of the machine running `forget`. `Snapshot::time` is restic's RFC 3339 text with
//! that offset, and the buckets here use the same wall clock, so a snapshot taken at
//! `2023-03-02T01:30:00+09:00` counts for 2 March even though it is 1 March in UTC. The one
//! remaining zone dependency: restic does the `keep_within` calendar subtraction in the
//! offset of the newest snapshot when that offset is not the forget machine's local zone,
//! but in the local zone (with its DST rules) when it is; we always use the recorded fixed
//! offset. The two differ only when the forget machine's zone has a DST switch inside the
//! subtracted span, and then by that switch's hour at the cut-off.
//!
//! **Ties.** Snapshots with the very same instant are ordered by id here; restic keeps them
//! in the (unspecified) order it loaded them, so with `keep_last` or same-instant buckets the
//! choice between two such snapshots may differ.
//!
//! Not modelled (we never pass them): `--keep-tag`, `--keep-within-{hourly,…}`, restic 0.16's
//! "keep the oldest snapshot while a rule has counts left" and its `unlimited` counts.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::jobs::Snapshot;
use crate::sources::RetentionPolicy;
use crate::timestamp::Timestamp;

/// What the policy does with one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The snapshot's full id.
    pub snapshot_id: String,
    /// The snapshot's short id.
    pub short_id: String,
    /// The snapshot's time, as restic reported it.
    pub time: String,
    /// Whether `forget` keeps it.
    pub keep: bool,
    /// Why it is kept, in restic's words ("last snapshot", "daily snapshot", "within 7d");
    /// empty when removed.
    pub reasons: Vec<String>,
}

/// The outcome for one `--group-by host,tags` group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOutcome {
    /// The group's host name.
    pub hostname: String,
    /// The group's tags, sorted.
    pub tags: Vec<String>,
    /// Kept snapshots, newest first.
    pub keep: Vec<Decision>,
    /// Removed snapshots, newest first.
    pub remove: Vec<Decision>,
}

/// What `restic forget --tag <tag> --group-by host,tags <policy>` would keep and remove,
/// group by group (sorted by host name, then tags).
///
/// Assumes no snapshot is dated in the future; when one may be, use [`what_if_at`] with the
/// current time, as restic ignores future snapshots when it looks for the newest one.
pub fn what_if(
    snapshots: &[Snapshot],
    tag: &str,
    policy: &RetentionPolicy,
) -> Result<Vec<GroupOutcome>, DomainError> {
    what_if_inner(snapshots, tag, policy, None)
}

/// [`what_if`] as if `forget` ran at `now`: `keep_within` counts back from the newest
/// snapshot dated before `now` (restic's rule), not from a snapshot in the future.
pub fn what_if_at(
    snapshots: &[Snapshot],
    tag: &str,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<Vec<GroupOutcome>, DomainError> {
    what_if_inner(snapshots, tag, policy, Some(now))
}

fn what_if_inner(
    snapshots: &[Snapshot],
    tag: &str,
    policy: &RetentionPolicy,
    now: Option<Timestamp>,
) -> Result<Vec<GroupOutcome>, DomainError> {
    if tag.is_empty() || tag.contains(',') {
        return Err(DomainError::invalid(
            "tag",
            "must be one non-empty tag (a source group name)",
        ));
    }
    let rules = Rules::from_policy(policy)?;
    let mut groups: BTreeMap<(String, Vec<String>), Vec<&Snapshot>> = BTreeMap::new();
    for s in snapshots.iter().filter(|s| s.tags.iter().any(|t| t == tag)) {
        let mut tags = s.tags.clone();
        tags.sort();
        groups
            .entry((s.hostname.clone(), tags))
            .or_default()
            .push(s);
    }
    groups
        .into_iter()
        .map(|((hostname, tags), list)| {
            let (keep, remove) = rules.apply(&list, now)?;
            Ok(GroupOutcome {
                hostname,
                tags,
                keep,
                remove,
            })
        })
        .collect()
}

/// Applies `policy` to one group of snapshots (restic's `ApplyPolicy`): `(keep, remove)`,
/// both newest first. `now`, when given, keeps future-dated snapshots from being taken as
/// the newest for `keep_within`.
pub fn apply_policy(
    snapshots: &[Snapshot],
    policy: &RetentionPolicy,
    now: Option<Timestamp>,
) -> Result<(Vec<Decision>, Vec<Decision>), DomainError> {
    let list: Vec<&Snapshot> = snapshots.iter().collect();
    Rules::from_policy(policy)?.apply(&list, now)
}

/// restic's `--keep-within` duration: `<n><unit>` pairs with units `y`, `m` (months), `d`,
/// `h`, e.g. `1y2m3d4h`. A unit given twice takes the later number; numbers may be
/// negative (`-1d`), as restic's parser allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResticDuration {
    /// Years.
    pub years: i64,
    /// Months.
    pub months: i64,
    /// Days.
    pub days: i64,
    /// Hours.
    pub hours: i64,
}

impl ResticDuration {
    /// Parses like restic's `ParseDuration` (surrounding white space is ignored); restic's
    /// error texts.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let bad = |m: String| DomainError::invalid("keep_within", m);
        let mut d = ResticDuration::default();
        let mut rest = s.trim();
        while !rest.is_empty() {
            let (negative, body) = match rest.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, rest),
            };
            let digits = body.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("no number found".into()));
            }
            let mut num: i64 = body[..digits]
                .parse()
                .map_err(|_| bad(format!("the number {} is too large", &body[..digits])))?;
            if negative {
                num = -num;
            }
            let after = &body[digits..];
            let Some(unit) = after.chars().next() else {
                return Err(bad(format!("no unit found after number {num}")));
            };
            match unit {
                'y' => d.years = num,
                'm' => d.months = num,
                'd' => d.days = num,
                'h' => d.hours = num,
                other => {
                    return Err(bad(format!(
                        "invalid unit {other:?} found after number {num}"
                    )))
                }
            }
            rest = &after[unit.len_utf8()..];
        }
        Ok(d)
    }

    /// Whether every part is zero (restic then ignores the rule).
    pub fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }

    /// `t − self` with Go's `t.AddDate(-y, -m, -d).Add(-h hours)`, as nanoseconds since the
    /// Unix epoch (wide enough that no duration overflows).
    fn cut_off_nanos(&self, t: &WallClock) -> i128 {
        let total_months = i128::from(t.year) * 12 + i128::from(t.month)
            - 1
            - i128::from(self.months)
            - i128::from(self.years) * 12;
        let year = total_months.div_euclid(12);
        let month = total_months.rem_euclid(12) + 1;
        let days = days_from_civil(year, month) + i128::from(t.day) - 1 - i128::from(self.days);
        let secs = days * 86_400 + i128::from(t.seconds_of_day)
            - i128::from(t.offset_seconds)
            - i128::from(self.hours) * 3_600;
        secs * 1_000_000_000 + i128::from(t.nanosecond)
    }
}

impl fmt::Display for ResticDuration {
    /// restic's `Duration.String()`: the non-zero parts, `y m d h` order (`1y2m`, `7d`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// Days from 1970-01-01 to the first day of `month` of `year` (proleptic Gregorian; any
/// year). Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i128, month: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5; // day 1 of the month
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time's fields in its own recorded offset.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    year: i64,
    month: u8,
    day: u8,
    seconds_of_day: u32,
    nanosecond: u32,
    offset_seconds: i32,
}

impl WallClock {
    fn of(t: &OffsetDateTime) -> Self {
        let (h, m, s) = t.to_hms();
        WallClock {
            year: i64::from(t.year()),
            month: u8::from(t.month()),
            day: t.day(),
            seconds_of_day: u32::from(h) * 3600 + u32::from(m) * 60 + u32::from(s),
            nanosecond: t.nanosecond(),
            offset_seconds: t.offset().whole_seconds(),
        }
    }

    /// Go's zero `time.Time` (0001-01-01 00:00:00 UTC): restic's "newest" when every
    /// snapshot is in the future.
    fn go_zero() -> Self {
        WallClock {
            year: 1,
            month: 1,
            day: 1,
            seconds_of_day: 0,
            nanosecond: 0,
            offset_seconds: 0,
        }
    }
}

/// The bucket kinds, in restic's order.
#[derive(Debug, Clone, Copy)]
enum Bucket {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Bucket {
    fn value(self, t: &OffsetDateTime, nr: usize) -> i64 {
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(u8::from(t.month())),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Bucket::Last => nr as i64,
            Bucket::Hourly => y * 1_000_000 + m * 10_000 + d * 100 + h,
            Bucket::Daily => y * 10_000 + m * 100 + d,
            Bucket::Weekly => {
                let (iso_year, week, _) = t.to_iso_week_date();
                i64::from(iso_year) * 100 + i64::from(week)
            }
            Bucket::Monthly => y * 100 + m,
            Bucket::Yearly => y,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Bucket::Last => "last snapshot",
            Bucket::Hourly => "hourly snapshot",
            Bucket::Daily => "daily snapshot",
            Bucket::Weekly => "weekly snapshot",
            Bucket::Monthly => "monthly snapshot",
            Bucket::Yearly => "yearly snapshot",
        }
    }
}

/// A policy ready to apply: counts (zero = unused) and the parsed duration.
struct Rules {
    counts: [(Bucket, u32); 6],
    within: Option<ResticDuration>,
}

impl Rules {
    fn from_policy(p: &RetentionPolicy) -> Result<Self, DomainError> {
        let within = match &p.keep_within {
            Some(w) => Some(ResticDuration::parse(w)?).filter(|d| !d.is_zero()),
            None => None,
        };
        let c = |v: Option<u32>| v.unwrap_or(0);
        Ok(Rules {
            counts: [
                (Bucket::Last, c(p.keep_last)),
                (Bucket::Hourly, c(p.keep_hourly)),
                (Bucket::Daily, c(p.keep_daily)),
                (Bucket::Weekly, c(p.keep_weekly)),
                (Bucket::Monthly, c(p.keep_monthly)),
                (Bucket::Yearly, c(p.keep_yearly)),
            ],
            within,
        })
    }

    fn is_empty(&self) -> bool {
        self.within.is_none() && self.counts.iter().all(|(_, n)| *n == 0)
    }

    fn apply(
        &self,
        snapshots: &[&Snapshot],
        now: Option<Timestamp>,
    ) -> Result<(Vec<Decision>, Vec<Decision>), DomainError> {
        let mut list: Vec<(&Snapshot, OffsetDateTime)> = snapshots
            .iter()
            .map(|s| parse_time(s).map(|t| (*s, t)))
            .collect::<Result<_, _>>()?;
        // Newest first; equal instants by id (restic: load order).
        list.sort_by(|a, b| match b.1.cmp(&a.1) {
            Ordering::Equal => a.0.id.cmp(&b.0.id),
            o => o,
        });
        let decision = |s: &Snapshot, keep: bool, reasons: Vec<String>| Decision {
            snapshot_id: s.id.clone(),
            short_id: s.short_id.clone(),
            time: s.time.clone(),
            keep,
            reasons,
        };
        if self.is_empty() {
            let keep = list
                .iter()
                .map(|(s, _)| decision(s, true, vec!["policy is empty".into()]))
                .collect();
            return Ok((keep, vec![]));
        }

        let cut_off = self.within.map(|w| {
            let now = now.map(|n| n.inner());
            let newest = list
                .iter()
                .map(|(_, t)| t)
                .filter(|t| now.is_none_or(|n| **t < n))
                .max();
            let newest = newest.map_or_else(WallClock::go_zero, WallClock::of);
            (w, w.cut_off_nanos(&newest))
        });

        let mut counts = self.counts.map(|(_, n)| n);
        let mut last = [-1i64; 6];
        let (mut keep, mut remove) = (vec![], vec![]);
        for (nr, (s, t)) in list.iter().enumerate() {
            let mut reasons = vec![];
            if let Some((w, cut)) = cut_off {
                if t.unix_timestamp_nanos() > cut {
                    reasons.push(format!("within {w}"));
                }
            }
            for (i, (bucket, _)) in self.counts.iter().enumerate() {
                if counts[i] > 0 {
                    let val = bucket.value(t, nr);
                    if val != last[i] {
                        last[i] = val;
                        counts[i] -= 1;
                        reasons.push(bucket.reason().to_string());
                    }
                }
            }
            if reasons.is_empty() {
                remove.push(decision(s, false, reasons));
            } else {
                keep.push(decision(s, true, reasons));
            }
        }
        Ok((keep, remove))
    }
}

fn parse_time(s: &Snapshot) -> Result<OffsetDateTime, DomainError> {
    OffsetDateTime::parse(&s.time, &Rfc3339).map_err(|_| {
        DomainError::invalid(
            "snapshots",
            format!(
                "snapshot {} has no valid RFC 3339 time ({:?})",
                s.short_id, s.time
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, time: &str) -> Snapshot {
        snap_on(id, time, "h", &["t"])
    }

    fn snap_on(id: &str, time: &str, host: &str, tags: &[&str]) -> Snapshot {
        Snapshot {
            id: id.into(),
            short_id: id.chars().take(8).collect(),
            time: time.into(),
            paths: vec!["/srv".into()],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            hostname: host.into(),
        }
    }

    fn ids(ds: &[Decision]) -> Vec<&str> {
        ds.iter().map(|d| d.snapshot_id.as_str()).collect()
    }

    fn one_group(snaps: &[Snapshot], policy: &RetentionPolicy) -> GroupOutcome {
        let mut g = what_if(snaps, "t", policy).unwrap();
        assert_eq!(g.len(), 1);
        g.remove(0)
    }

    #[test]
    fn empty_policy_keeps_everything() {
        let snaps = [
            snap("a", "2024-01-01T00:00:00Z"),
            snap("b", "2024-01-02T00:00:00Z"),
        ];
        let g = one_group(&snaps, &RetentionPolicy::default());
        assert_eq!(ids(&g.keep), ["b", "a"]);
        assert!(g.remove.is_empty());
        assert_eq!(g.keep[0].reasons, ["policy is empty"]);
        // A zero count or a zero duration is no rule either.
        let zero = RetentionPolicy {
            keep_last: Some(0),
            keep_within: Some("0d".into()),
            ..Default::default()
        };
        assert!(one_group(&snaps, &zero).remove.is_empty());
    }

    #[test]
    fn keep_last_counts_snapshots_not_buckets() {
        let snaps = [
            snap("a", "2024-01-01T10:00:00Z"),
            snap("b", "2024-01-01T10:00:01Z"),
            snap("c", "2024-01-01T10:00:02Z"),
            snap("d", "2024-01-01T10:00:03Z"),
        ];
        let p = RetentionPolicy {
            keep_last: Some(3),
            ..Default::default()
        };
        let g = one_group(&snaps, &p);
        assert_eq!(ids(&g.keep), ["d", "c", "b"]);
        assert_eq!(ids(&g.remove), ["a"]);
        assert!(g
            .keep
            .iter()
            .all(|d| d.keep && d.reasons == ["last snapshot"]));
        assert!(!g.remove[0].keep && g.remove[0].reasons.is_empty());
    }

    #[test]
    fn same_hour_snapshots_share_one_hourly_bucket() {
        let snaps = [
            snap("a", "2024-05-01T09:05:00Z"),
            snap("b", "2024-05-01T09:59:59.999999999Z"),
            snap("c", "2024-05-01T10:00:00Z"),
            snap("d", "2024-05-01T08:59:59Z"),
        ];
        let p = RetentionPolicy {
            keep_hourly: Some(10),
            ..Default::default()
        };
        let g = one_group(&snaps, &p);
        // The newest of each hour: c (10h), b (9h), d (8h); a shares 9h with b.
        assert_eq!(ids(&g.keep), ["c", "b", "d"]);
        assert_eq!(ids(&g.remove), ["a"]);
    }

    #[test]
    fn iso_weeks_cross_the_year_boundary() {
        // 2020-12-28 (Mon) … 2021-01-03 (Sun) are all ISO week 2020-W53; 2021-01-04 is
        // 2021-W01. 2018-12-31 (Mon) belongs to 2019-W01, like 2019-01-06 (Sun).
        let snaps = [
            snap("w53-mon", "2020-12-28T12:00:00Z"),
            snap("w53-thu", "2020-12-31T12:00:00Z"),
            snap("w53-sun", "2021-01-03T23:00:00Z"),
            snap("w01-mon", "2021-01-04T00:30:00Z"),
            snap("2019w01-mon", "2018-12-31T12:00:00Z"),
            snap("2019w01-sun", "2019-01-06T12:00:00Z"),
            snap("2018w52-sun", "2018-12-30T12:00:00Z"),
        ];
        let p = RetentionPolicy {
            keep_weekly: Some(10),
            ..Default::default()
        };
        let g = one_group(&snaps, &p);
        assert_eq!(
            ids(&g.keep),
            ["w01-mon", "w53-sun", "2019w01-sun", "2018w52-sun"]
        );
        assert_eq!(ids(&g.remove), ["w53-thu", "w53-mon", "2019w01-mon"]);
        // Yearly goes by calendar year, not by ISO year.
        let p = RetentionPolicy {
            keep_yearly: Some(10),
            ..Default::default()
        };
        let g = one_group(&snaps, &p);
        assert_eq!(
            ids(&g.keep),
            ["w01-mon", "w53-thu", "2019w01-sun", "2019w01-mon"]
        );
    }

    #[test]
    fn counters_run_out() {
        let snaps: Vec<Snapshot> = (1..=9)
            .map(|d| snap(&format!("d{d}"), &format!("2024-03-0{d}T12:00:00Z")))
            .collect();
        let p = RetentionPolicy {
            keep_daily: Some(3),
            ..Default::default()
        };
        let g = one_group(&snaps, &p);
        // restic 0.14 does not keep the oldest when counts are left over; here none are.
        assert_eq!(ids(&g.keep), ["d9", "d8", "d7"]);
        assert_eq!(g.remove.len(), 6);
    }

    #[test]
    fn several_rules_keep_the_same_snapshot() {
        let snaps = [
            snap("old", "2023-06-15T08:00:00Z"),
            snap("mid", "2024-01-10T08:00:00Z"),
            snap("new-early", "2024-01-20T08:00:00Z"),
            snap("new", "2024-01-20T09:00:00Z"),
        ];
        let p = RetentionPolicy {
            keep_last: Some(1),
            keep_daily: Some(2),
            keep_monthly: Some(2),
            keep_yearly: Some(5),
            keep_within: Some("3d".into()),
            ..Default::default()
        };
        let g = one_group(&snaps, &p);
        assert_eq!(ids(&g.keep), ["new", "new-early", "mid", "old"]);
        assert!(g.remove.is_empty());
        let reasons: Vec<Vec<&str>> = g
            .keep
            .iter()
            .map(|d| d.reasons.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            reasons,
            [
                vec![
                    "within 3d",
                    "last snapshot",
                    "daily snapshot",
                    "monthly snapshot",
                    "yearly snapshot"
                ],
                // Same day, month and year as "new": only keep_within keeps it.
                vec!["within 3d"],
                // January 2024 is already the monthly bucket of "new".
                vec!["daily snapshot"],
                // The daily count is used up; a new month and a new year.
                vec!["monthly snapshot", "yearly snapshot"],
            ]
        );
    }

    #[test]
    fn keep_within_counts_back_from_the_newest_snapshot_not_now() {
        let snaps = [
            snap("a", "2020-01-01T00:00:00Z"),
            snap("b", "2020-01-07T12:00:00Z"),
            snap("c", "2020-01-08T00:00:00Z"),
            snap("d", "2020-01-15T00:00:00Z"),
        ];
        let p = RetentionPolicy {
            keep_within: Some("7d".into()),
            ..Default::default()
        };
        let g = one_group(&snaps, &p);
        // Cut-off 2020-01-08T00:00:00Z, exclusive: c is exactly on it and goes.
        assert_eq!(ids(&g.keep), ["d"]);
        assert_eq!(g.keep[0].reasons, ["within 7d"]);
        let p = RetentionPolicy {
            keep_within: Some("7d1h".into()),
            ..Default::default()
        };
        assert_eq!(ids(&one_group(&snaps, &p).keep), ["d", "c"]);
    }

    #[test]
    fn keep_within_ignores_future_snapshots_when_now_is_known() {
        let snaps = [
            snap("a", "2024-01-01T10:00:00Z"),
            snap("b", "2024-01-02T10:00:00Z"),
            snap("c", "2024-01-03T10:00:00Z"),
            snap("future", "2030-01-01T00:00:00Z"),
        ];
        let p = RetentionPolicy {
            keep_within: Some("1d".into()),
            ..Default::default()
        };
        let now: Timestamp = "2026-11-29T00:00:00Z".parse().unwrap();
        let g = what_if_at(&snaps, "t", &p, now).unwrap().remove(0);
        assert_eq!(ids(&g.keep), ["future", "c"]);
        // Without "now" the future snapshot is the newest.
        assert_eq!(ids(&one_group(&snaps, &p).keep), ["future"]);
        // All in the future: Go's zero time is the newest, so everything is within.
        let early: Timestamp = "2000-01-01T00:00:00Z".parse().unwrap();
        let g = what_if_at(&snaps, "t", &p, early).unwrap().remove(0);
        assert_eq!(g.keep.len(), 4);
    }

    #[test]
    fn keep_within_uses_go_add_date_normalisation() {
        // 2023-03-31 minus one month is "2023-02-31" = 2023-03-03.
        let snaps = [
            snap("before", "2023-03-02T23:59:59Z"),
            snap("on", "2023-03-03T00:00:00Z"),
            snap("after", "2023-03-03T00:00:01Z"),
            snap("newest", "2023-03-31T00:00:00Z"),
        ];
        let p = RetentionPolicy {
            keep_within: Some("1m".into()),
            ..Default::default()
        };
        assert_eq!(ids(&one_group(&snaps, &p).keep), ["newest", "after"]);
        // Leap year: 2024-03-31 − 1m = 2024-03-02; 1y from 2024-02-29 = 2023-03-01.
        let snaps = [
            snap("x", "2024-03-02T00:00:00Z"),
            snap("y", "2024-03-02T00:00:01Z"),
            snap("newest", "2024-03-31T00:00:00Z"),
        ];
        assert_eq!(ids(&one_group(&snaps, &p).keep), ["newest", "y"]);
        let snaps = [
            snap("x", "2023-03-01T00:00:00Z"),
            snap("y", "2023-03-01T00:00:01Z"),
            snap("newest", "2024-02-29T00:00:00Z"),
        ];
        let p = RetentionPolicy {
            keep_within: Some("1y".into()),
            ..Default::default()
        };
        assert_eq!(ids(&one_group(&snaps, &p).keep), ["newest", "y"]);
    }

    #[test]
    fn buckets_use_the_recorded_offset_and_within_uses_the_instant() {
        // 01:30 +09:00 on 2 March is 16:30 UTC on 1 March; restic counts it for 2 March.
        let snaps = [
            snap("utc-1mar", "2023-03-01T10:00:00Z"),
            snap("tokyo-2mar", "2023-03-02T01:30:00+09:00"),
            snap("utc-1mar-late", "2023-03-01T20:00:00Z"),
        ];
        let p = RetentionPolicy {
            keep_daily: Some(5),
            ..Default::default()
        };
        let g = one_group(&snaps, &p);
        // Newest first by instant: 20:00Z (1 Mar), 16:30Z (2 Mar wall clock), 10:00Z (1 Mar
        // again, a change of bucket).
        assert_eq!(ids(&g.keep), ["utc-1mar-late", "tokyo-2mar", "utc-1mar"]);
        let p = RetentionPolicy {
            keep_within: Some("4h".into()),
            ..Default::default()
        };
        assert_eq!(
            ids(&one_group(&snaps, &p).keep),
            ["utc-1mar-late", "tokyo-2mar"]
        );
    }

    #[test]
    fn groups_by_host_and_sorted_tags_over_the_tagged_snapshots() {
        let snaps = [
            snap_on("1", "2024-01-01T00:00:00Z", "b", &["t"]),
            snap_on("2", "2024-01-02T00:00:00Z", "a", &["x", "t"]),
            snap_on("3", "2024-01-03T00:00:00Z", "a", &["t", "x"]),
            snap_on("4", "2024-01-04T00:00:00Z", "a", &["t"]),
            snap_on("5", "2024-01-05T00:00:00Z", "a", &["other"]),
        ];
        let p = RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        };
        let g = what_if(&snaps, "t", &p).unwrap();
        let summary: Vec<String> = g
            .iter()
            .map(|g| {
                format!(
                    "{} {:?} keep {:?} remove {:?}",
                    g.hostname,
                    g.tags,
                    ids(&g.keep),
                    ids(&g.remove)
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                r#"a ["t"] keep ["4"] remove []"#,
                r#"a ["t", "x"] keep ["3"] remove ["2"]"#,
                r#"b ["t"] keep ["1"] remove []"#,
            ]
        );
        assert!(what_if(&snaps, "none", &p).unwrap().is_empty());
    }

    #[test]
    fn errors() {
        let bad_time = [snap("a", "yesterday")];
        let p = RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        };
        assert!(what_if(&bad_time, "t", &p).is_err());
        assert!(what_if(&[], "", &p).is_err());
        assert!(what_if(&[], "a,b", &p).is_err());
        let p = RetentionPolicy {
            keep_within: Some("1w".into()),
            ..Default::default()
        };
        assert!(what_if(&[], "t", &p).is_err());
    }

    #[test]
    fn duration_parsing_matches_restic() {
        let d = ResticDuration::parse("1y2m3d4h").unwrap();
        assert_eq!(
            d,
            ResticDuration {
                years: 1,
                months: 2,
                days: 3,
                hours: 4
            }
        );
        assert_eq!(d.to_string(), "1y2m3d4h");
        // restic: the later value wins, white space around is ignored, order is free.
        assert_eq!(ResticDuration::parse("1d2d").unwrap().to_string(), "2d");
        assert_eq!(ResticDuration::parse(" 4h1y ").unwrap().to_string(), "1y4h");
        assert_eq!(ResticDuration::parse("-1d").unwrap().days, -1);
        assert!(ResticDuration::parse("").unwrap().is_zero());
        assert!(ResticDuration::parse("0y0d").unwrap().is_zero());
        let msg = |s: &str| ResticDuration::parse(s).unwrap_err().to_string();
        assert_eq!(msg("5"), "keep_within: no unit found after number 5");
        assert_eq!(msg("1d1"), "keep_within: no unit found after number 1");
        assert_eq!(
            msg("1w"),
            "keep_within: invalid unit 'w' found after number 1"
        );
        assert_eq!(
            msg("1D"),
            "keep_within: invalid unit 'D' found after number 1"
        );
        assert_eq!(msg("d"), "keep_within: no number found");
        assert_eq!(
            msg("1 d"),
            "keep_within: invalid unit ' ' found after number 1"
        );
        assert!(ResticDuration::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn huge_durations_keep_everything_without_overflow() {
        let snaps = [
            snap("a", "0001-01-01T00:00:00Z"),
            snap("b", "9999-12-31T23:59:59Z"),
        ];
        let p = RetentionPolicy {
            keep_within: Some(format!("{}y{}h", i64::MAX, i64::MAX)),
            ..Default::default()
        };
        assert_eq!(one_group(&snaps, &p).keep.len(), 2);
    }

    #[test]
    fn days_from_civil_matches_the_time_crate() {
        for (y, m) in [
            (1970, 1),
            (2000, 3),
            (2024, 2),
            (1, 1),
            (-44, 3),
            (9999, 12),
        ] {
            let date =
                time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), 1).unwrap();
            let expected = i128::from(date.to_julian_day() - 2_440_588);
            assert_eq!(
                days_from_civil(i128::from(y), i128::from(m)),
                expected,
                "{y}-{m}"
            );
        }
    }
}
