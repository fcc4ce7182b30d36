//! `domain::retention` against the real restic: one throw-away repository with snapshots at
//! chosen times (`backup --time`), then for each policy `forget --dry-run --json --tag t
//! --group-by host,tags` must keep and remove exactly what `what_if_at` says, with the same
//! reasons. `--dry-run` changes nothing, so all policies share the repository.
//!
//! Skipped (with a note on stderr) when no restic binary is found; a mismatch fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use domain::jobs::Snapshot;
use domain::retention::{what_if_at, GroupOutcome};
use domain::sources::RetentionPolicy;
use domain::Timestamp;
use serde_json::Value;

const PASSWORD: &str = "retention-test";

/// (time as `backup --time` takes it, the zone it is read in, host, tags).
type Spec = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// About fifty snapshots over three years: sparse months, an ISO-week/year boundary (with a
/// New York snapshot whose wall clock is still in the old year), a cluster inside a few
/// hours (with a Tokyo snapshot whose wall clock is the next day), snapshots right on and
/// just after the `keep_within` cut-offs, a daily run at the end, another host (with a
/// snapshot in the future) and a second tag set on the same host, plus one not tagged `t`.
const SNAPSHOTS: &[Spec] = &[
    // 2023: roughly every other month.
    ("2023-01-15 08:00:00", "UTC", "h", &["t"]),
    ("2023-03-10 08:00:00", "UTC", "h", &["t"]),
    ("2023-05-20 08:00:00", "UTC", "h", &["t"]),
    ("2023-08-01 08:00:00", "UTC", "h", &["t"]),
    ("2023-11-30 08:00:00", "UTC", "h", &["t"]),
    ("2023-12-31 23:30:00", "UTC", "h", &["t"]),
    // 2024.
    ("2024-01-01 00:30:00", "UTC", "h", &["t"]),
    ("2024-02-29 12:00:00", "UTC", "h", &["t"]),
    ("2024-04-15 12:00:00", "UTC", "h", &["t"]),
    // Exactly on the 1y2m cut-off from the newest (2025-07-31 10:00).
    ("2024-05-31 10:00:00", "UTC", "h", &["t"]),
    ("2024-06-01 12:00:00", "UTC", "h", &["t"]),
    ("2024-06-01 18:00:00", "UTC", "h", &["t"]),
    ("2024-09-09 12:00:00", "UTC", "h", &["t"]),
    // ISO weeks around new year: 29 Dec is 2024-W52 (Sunday), 30 Dec 2025-W01.
    ("2024-12-29 12:00:00", "UTC", "h", &["t"]),
    ("2024-12-30 12:00:00", "UTC", "h", &["t"]),
    // 2025-01-01T02:00Z, but 31 December 2024 on its own wall clock.
    ("2024-12-31 21:00:00", "America/New_York", "h", &["t"]),
    ("2025-01-01 10:00:00", "UTC", "h", &["t"]),
    ("2025-01-05 12:00:00", "UTC", "h", &["t"]),
    ("2025-01-06 12:00:00", "UTC", "h", &["t"]),
    // Spring.
    ("2025-03-02 12:00:00", "UTC", "h", &["t"]),
    ("2025-03-31 12:00:00", "UTC", "h", &["t"]),
    ("2025-05-31 12:00:00", "UTC", "h", &["t"]),
    // A busy day: several in one hour.
    ("2025-06-10 09:05:00", "UTC", "h", &["t"]),
    ("2025-06-10 09:40:00", "UTC", "h", &["t"]),
    ("2025-06-10 09:59:59", "UTC", "h", &["t"]),
    ("2025-06-10 10:00:00", "UTC", "h", &["t"]),
    ("2025-06-10 11:30:00", "UTC", "h", &["t"]),
    // 2025-06-10T16:30Z, but 11 June on its own wall clock.
    ("2025-06-11 01:30:00", "Asia/Tokyo", "h", &["t"]),
    ("2025-06-10 20:00:00", "UTC", "h", &["t"]),
    ("2025-06-11 08:00:00", "UTC", "h", &["t"]),
    ("2025-06-12 08:00:00", "UTC", "h", &["t"]),
    // Around the 30d / 1m cut-off (2025-07-01 10:00, exclusive: 31 July − 1 month is
    // "31 June", which Go normalises to 1 July).
    ("2025-06-30 12:00:00", "UTC", "h", &["t"]),
    ("2025-07-01 10:00:00", "UTC", "h", &["t"]),
    ("2025-07-01 10:00:01", "UTC", "h", &["t"]),
    // A daily run; the newest snapshot is 2025-07-31 10:00.
    ("2025-07-24 10:00:00", "UTC", "h", &["t"]),
    ("2025-07-25 10:00:00", "UTC", "h", &["t"]),
    ("2025-07-26 10:00:00", "UTC", "h", &["t"]),
    ("2025-07-27 10:00:00", "UTC", "h", &["t"]),
    ("2025-07-28 10:00:00", "UTC", "h", &["t"]),
    ("2025-07-29 10:00:00", "UTC", "h", &["t"]),
    ("2025-07-30 10:00:00", "UTC", "h", &["t"]),
    ("2025-07-31 09:00:00", "UTC", "h", &["t"]),
    ("2025-07-31 10:00:00", "UTC", "h", &["t"]),
    // Another host, with a snapshot dated in the future (restic does not count back from
    // it for keep-within).
    ("2025-01-01 10:00:00", "UTC", "h2", &["t"]),
    ("2025-07-30 10:00:00", "UTC", "h2", &["t"]),
    ("2025-07-31 10:00:00", "UTC", "h2", &["t"]),
    ("2099-01-01 00:00:00", "UTC", "h2", &["t"]),
    // Same host, another tag set: its own group.
    ("2025-07-15 10:00:00", "UTC", "h", &["t", "extra"]),
    ("2025-07-16 10:00:00", "UTC", "h", &["extra", "t"]),
    // Not tagged t: outside every forget here.
    ("2025-07-31 11:00:00", "UTC", "h", &["other"]),
];

fn restic_binary() -> Option<PathBuf> {
    ["/usr/bin/restic", "/usr/local/bin/restic"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

struct Repo {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Repo {
    fn command(&self, tz: &str) -> Command {
        let mut c = Command::new(&self.bin);
        for var in [
            "RESTIC_PASSWORD_FILE",
            "RESTIC_PASSWORD_COMMAND",
            "RESTIC_REPOSITORY_FILE",
            "RESTIC_KEY_HINT",
        ] {
            c.env_remove(var);
        }
        c.env("RESTIC_REPOSITORY", self.dir.path().join("repo"))
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", self.dir.path().join("cache"))
            .env("TZ", tz);
        c
    }

    fn run(&self, tz: &str, args: &[&str]) -> String {
        let out = self
            .command(tz)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running restic {args:?}: {e}"));
        assert!(
            out.status.success(),
            "restic {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

fn backup(repo: &Repo, (time, tz, host, tags): &Spec) {
    let data = repo.data();
    let mut args = vec!["backup", "-q", "--time", time, "--host", host];
    for t in *tags {
        args.extend(["--tag", t]);
    }
    args.push(data.to_str().unwrap());
    repo.run(tz, &args);
}

fn make_repo(bin: PathBuf) -> Repo {
    let repo = Repo {
        bin,
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir(repo.data()).unwrap();
    std::fs::write(repo.data().join("file"), b"tiny").unwrap();
    repo.run("UTC", &["init", "-q"]);
    // Each restic run costs about half a second (mostly key derivation); backups only
    // take shared locks, so a few run side by side.
    let chunks: Vec<&[Spec]> = SNAPSHOTS.chunks(SNAPSHOTS.len().div_ceil(4)).collect();
    std::thread::scope(|s| {
        for chunk in chunks {
            let repo = &repo;
            s.spawn(move || chunk.iter().for_each(|spec| backup(repo, spec)));
        }
    });
    repo
}

fn snapshots(repo: &Repo) -> Vec<Snapshot> {
    let v: Value = serde_json::from_str(&repo.run("UTC", &["snapshots", "--json", "--no-lock"]))
        .expect("snapshots --json");
    v.as_array()
        .expect("an array of snapshots")
        .iter()
        .map(|s| {
            let str_of = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            let list = |k: &str| -> Vec<String> {
                s[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Snapshot {
                id: str_of("id"),
                short_id: str_of("short_id"),
                time: str_of("time"),
                paths: list("paths"),
                tags: list("tags"),
                hostname: str_of("hostname"),
            }
        })
        .collect()
}

/// Per group (host, sorted tags): kept ids with their reasons, removed ids; both newest
/// first.
type Outcome = BTreeMap<(String, Vec<String>), (Vec<(String, Vec<String>)>, Vec<String>)>;

fn restic_forget(repo: &Repo, tz: &str, policy: &RetentionPolicy) -> Outcome {
    // --dry-run changes nothing, so no lock is needed (and each lock costs restic a wait).
    let mut args: Vec<String> = [
        "--no-lock",
        "forget",
        "--dry-run",
        "--json",
        "--no-cache",
        "--tag",
        "t",
        "--group-by",
        "host,tags",
    ]
    .map(String::from)
    .to_vec();
    args.extend(policy.to_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = repo.run(tz, &args);
    if text.trim().is_empty() {
        return Outcome::new();
    }
    let groups: Value = serde_json::from_str(&text).expect("forget --json");
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut out = Outcome::new();
    for g in groups.as_array().expect("an array of groups") {
        let keep = ids(&g["keep"]);
        // `reasons` is in the order of `keep` (its snapshots carry no id).
        let reasons: Vec<Vec<String>> = g["reasons"]
            .as_array()
            .map(|a| a.iter().map(|r| strings(&r["matches"])).collect())
            .unwrap_or_default();
        assert_eq!(
            keep.len(),
            reasons.len(),
            "one reason entry per kept snapshot"
        );
        let mut tags = strings(&g["tags"]);
        tags.sort();
        let key = (g["host"].as_str().unwrap().to_string(), tags);
        let prev = out.insert(
            key,
            (keep.into_iter().zip(reasons).collect(), ids(&g["remove"])),
        );
        assert!(prev.is_none(), "one entry per group");
    }
    out
}

fn ours(groups: Vec<GroupOutcome>) -> Outcome {
    groups
        .into_iter()
        .map(|g| {
            let keep = g
                .keep
                .into_iter()
                .map(|d| {
                    assert!(d.keep);
                    (d.snapshot_id, d.reasons)
                })
                .collect();
            let remove = g
                .remove
                .into_iter()
                .map(|d| {
                    assert!(!d.keep);
                    d.snapshot_id
                })
                .collect();
            ((g.hostname, g.tags), (keep, remove))
        })
        .collect()
}

/// The outcome with times instead of ids, for a readable failure.
fn explain(o: &Outcome, times: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for ((host, tags), (keep, remove)) in o {
        s += &format!("  group {host} {tags:?}\n");
        for (id, reasons) in keep {
            s += &format!("    keep   {} {}\n", times[id], reasons.join(", "));
        }
        for id in remove {
            s += &format!("    remove {}\n", times[id]);
        }
    }
    s
}

fn policy(f: impl FnOnce(&mut RetentionPolicy)) -> RetentionPolicy {
    let mut p = RetentionPolicy::default();
    f(&mut p);
    p
}

#[test]
fn what_if_matches_restic_forget() {
    let Some(bin) = restic_binary() else {
        eprintln!("SKIPPED: no restic binary (looked in /usr/bin and /usr/local/bin)");
        return;
    };
    let repo = make_repo(bin);
    let snaps = snapshots(&repo);
    assert_eq!(snaps.len(), SNAPSHOTS.len());
    let times: BTreeMap<String, String> = snaps
        .iter()
        .map(|s| (s.id.clone(), format!("{} {:?}", s.time, s.hostname)))
        .collect();
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let now = Timestamp::from_unix_micros(micros as i64).unwrap();

    let policies = [
        policy(|p| p.keep_last = Some(3)),
        policy(|p| {
            p.keep_daily = Some(7);
            p.keep_weekly = Some(4);
            p.keep_monthly = Some(6);
        }),
        policy(|p| {
            p.keep_hourly = Some(5);
            p.keep_yearly = Some(2);
        }),
        policy(|p| p.keep_within = Some("30d".into())),
        policy(|p| {
            p.keep_within = Some("1y2m".into());
            p.keep_last = Some(1);
        }),
        policy(|p| p.keep_within = Some("1m".into())),
        policy(|p| p.keep_weekly = Some(40)),
        policy(|p| p.keep_daily = Some(40)),
        policy(|p| p.keep_hourly = Some(60)),
        policy(|p| {
            p.keep_last = Some(2);
            p.keep_hourly = Some(3);
            p.keep_daily = Some(5);
            p.keep_weekly = Some(3);
            p.keep_monthly = Some(4);
            p.keep_yearly = Some(3);
            p.keep_within = Some("10d".into());
        }),
    ];
    // Every (policy, zone) pair, four restic runs at a time.
    let runs: Vec<(&RetentionPolicy, &str)> = policies
        .iter()
        .flat_map(|p| ["UTC", "Asia/Tokyo"].map(|tz| (p, tz)))
        .collect();
    let compared = runs.len();
    let results: Vec<(&RetentionPolicy, &str, Outcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .chunks(runs.len().div_ceil(4))
            .map(|chunk| {
                let repo = &repo;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(p, tz)| (*p, *tz, restic_forget(repo, tz, p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a restic run panicked"))
            .collect()
    });
    let mut failures = vec![];
    for (p, tz, actual) in results {
        let expected = ours(what_if_at(&snaps, "t", p, now).expect("what_if"));
        assert_eq!(expected.len(), 3, "groups h/[t], h/[extra t], h2/[t]");
        // The buckets follow each snapshot's recorded offset, not the zone forget runs in,
        // so both zones must give the same answer.
        if actual != expected {
            failures.push(format!(
                "policy {} (TZ={tz}):\n restic:\n{} what_if:\n{}",
                p.describe(),
                explain(&actual, &times),
                explain(&expected, &times)
            ));
        } else {
            let (kept, removed) = actual.values().fold((0, 0), |(k, r), (keep, remove)| {
                (k + keep.len(), r + remove.len())
            });
            eprintln!(
                "same as restic: {} (TZ={tz}): keep {kept}, remove {removed}",
                p.describe()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} comparisons differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
