//! The event store: versions, idempotency, append-only, group commit, projections, rebuild.

use std::sync::Arc;

use domain::event::{UserCreated, UserLoggedIn, UserLoggedOut, UserLoginFailed};
use domain::users::{LoginFailure, Role};
use domain::{Actor, Event};
use proptest::prelude::*;
use rusqlite::Connection;
use server::store::{
    self, AppendRequest, EventLog, EventStore, ExpectedVersion, StoreError, StoreOptions,
};

use crate::helpers::open_store;

fn created(id: &str, name: &str) -> Event {
    UserCreated {
        user_id: id.into(),
        username: name.into(),
        role: Role::Operator,
        password_ref: format!("password-{id}"),
        via_setup: false,
    }
    .into()
}

fn logged_in(id: &str, n: usize) -> Event {
    UserLoggedIn {
        user_id: id.into(),
        session_id: format!("s{n}"),
        ip: None,
    }
    .into()
}

fn actor() -> Actor {
    Actor::System("test".into())
}

#[tokio::test]
async fn expected_versions_and_typed_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(dir.path());
    let r = s
        .append(
            AppendRequest::new("user-a", actor(), vec![created("a", "alice")])
                .expecting(ExpectedVersion::NoStream),
        )
        .await
        .unwrap();
    assert_eq!((r.first_seq, r.last_seq, r.stream_version), (1, 1, 1));

    let again = s
        .append(
            AppendRequest::new("user-a", actor(), vec![logged_in("a", 1)])
                .expecting(ExpectedVersion::NoStream),
        )
        .await;
    match again {
        Err(StoreError::Conflict { stream, actual, .. }) => {
            assert_eq!(stream, "user-a");
            assert_eq!(actual, 1);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let stale = s
        .append(
            AppendRequest::new("user-a", actor(), vec![logged_in("a", 1)])
                .expecting(ExpectedVersion::Exact(0)),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })));
    let ok = s
        .append(
            AppendRequest::new(
                "user-a",
                actor(),
                vec![logged_in("a", 1), logged_in("a", 2)],
            )
            .expecting(ExpectedVersion::Exact(1)),
        )
        .await
        .unwrap();
    assert_eq!((ok.first_seq, ok.last_seq, ok.stream_version), (2, 3, 3));
    let any = s
        .append(AppendRequest::new(
            "user-a",
            actor(),
            vec![logged_in("a", 3)],
        ))
        .await
        .unwrap();
    assert_eq!(any.stream_version, 4);
    assert_eq!(s.head().seq, 4);
    s.close().await;
}

#[tokio::test]
async fn repeated_command_and_event_ids_append_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(dir.path());
    let req = AppendRequest::new(
        "user-a",
        actor(),
        vec![created("a", "alice"), logged_in("a", 1)],
    )
    .command("cmd-1");
    let first = s.append(req.clone()).await.unwrap();
    let second = s.append(req).await.unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(
        (second.first_seq, second.last_seq),
        (first.first_seq, first.last_seq)
    );

    let mut with_ids = AppendRequest::new("user-a", actor(), vec![logged_in("a", 2)]);
    with_ids.event_ids = Some(vec!["0190f000-0000-7000-8000-000000000001".into()]);
    let a = s.append(with_ids.clone()).await.unwrap();
    let b = s.append(with_ids).await.unwrap();
    assert!(b.duplicate);
    assert_eq!(a.first_seq, b.first_seq);
    assert_eq!(s.head().seq, 3);
    s.close().await;
}

#[tokio::test]
async fn the_database_refuses_updates_and_deletes_of_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(dir.path());
    s.append(AppendRequest::new(
        "user-a",
        actor(),
        vec![created("a", "alice")],
    ))
    .await
    .unwrap();
    let path = s.path().to_path_buf();
    s.close().await;
    let c = Connection::open(path).unwrap();
    let up = c.execute("UPDATE events SET data = '{}' WHERE seq = 1", []);
    assert!(up.unwrap_err().to_string().contains("append-only"));
    let del = c.execute("DELETE FROM events", []);
    assert!(del.unwrap_err().to_string().contains("append-only"));
}

#[tokio::test]
async fn concurrent_writers_share_commits_and_one_conflict_rejects_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(dir.path());
    s.append(AppendRequest::new(
        "user-x",
        actor(),
        vec![created("x", "xavier")],
    ))
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            // Every fourth writer insists the stream does not exist: it must fail alone.
            let expected = if i % 4 == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Any
            };
            s.append(
                AppendRequest::new(
                    format!(
                        "user-{}",
                        if i % 4 == 0 {
                            "x".to_string()
                        } else {
                            format!("w{i}")
                        }
                    ),
                    actor(),
                    vec![logged_in("x", i)],
                )
                .expecting(expected),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, conflicts), (48, 16));
    let events = s.read_after(0, 1000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=49).collect::<Vec<_>>(), "seq is gap-free");
    let conn = Connection::open(s.path()).unwrap();
    store::verify(&conn, None).unwrap();
    s.close().await;
}

#[tokio::test]
async fn close_commits_everything_queued_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(dir.path());
    // `join!` polls the appends first, so all 300 are queued before `close` sends its stop
    // message; close must still commit every one of them and acknowledge it.
    let appends = futures::future::join_all((0..300).map(|i| {
        s.append(AppendRequest::new(
            format!("user-{i}"),
            actor(),
            vec![logged_in("n", i)],
        ))
    }));
    let closing = async {
        tokio::task::yield_now().await;
        s.close().await;
    };
    let (results, ()) = tokio::join!(appends, closing);
    for r in results {
        r.unwrap();
    }
    let after = s
        .append(AppendRequest::new(
            "user-late",
            actor(),
            vec![logged_in("n", 1)],
        ))
        .await;
    assert!(matches!(after, Err(StoreError::Closed)));
    let reopened = open_store(dir.path());
    assert_eq!(reopened.head().seq, 300);
    reopened.close().await;
}

#[tokio::test]
async fn projections_apply_inline_and_old_shapes_are_upcast_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(dir.path());
    s.append(AppendRequest::new(
        "user-a",
        actor(),
        vec![created("a", "alice"), logged_in("a", 1)],
    ))
    .await
    .unwrap();
    let user = s
        .read(|c| -> Result<_, StoreError> { Ok(projections::users::get(c, "a")?) })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.username, "alice");
    assert!(user.last_login_at.is_some());
    s.close().await;

    // An export containing a v1 UserLoginFailed (no `reason`) imports and projects.
    let src = Connection::open(dir.path().join("restic-manager.db")).unwrap();
    let mut out = Vec::new();
    store::export(&src, &Default::default(), &mut out).unwrap();
    let mut rows: Vec<domain::RecordedEvent> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut old = rows[1].clone();
    old.seq = 3;
    old.event_id = "0190f000-0000-7000-8000-0000000000aa".into();
    old.stream_version = 3;
    old.event_type = "UserLoginFailed".into();
    old.schema_version = 1;
    old.data = r#"{"username":"alice","user_id":"a"}"#.into();
    old.prev_hash = rows[1].hash.clone();
    old.hash = old.compute_hash();
    rows.push(old);
    let jsonl: String = rows
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = dir2.path().join("restic-manager.db");
    let mut c2 = store::open_offline(&db2, true).unwrap();
    assert_eq!(store::import(&mut c2, &mut jsonl.as_bytes()).unwrap(), 3);
    let failed: i64 = c2
        .query_row(
            "SELECT failed_login_count FROM users WHERE id = 'a'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, 1);
    match rows[2].decode().unwrap() {
        Event::UserLoginFailed(f) => assert_eq!(f.reason, LoginFailure::BadPassword),
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn export_import_round_trips_exactly_and_import_needs_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(dir.path());
    for i in 0..20 {
        s.append(AppendRequest::new(
            format!("user-{i}"),
            actor(),
            vec![
                created(&i.to_string(), &format!("user{i}")),
                logged_in(&i.to_string(), i),
            ],
        ))
        .await
        .unwrap();
    }
    let path = s.path().to_path_buf();
    s.close().await;
    let src = Connection::open(&path).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        store::export(&src, &Default::default(), &mut out).unwrap(),
        40
    );
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = dir2.path().join("restic-manager.db");
    let mut c2 = store::open_offline(&db2, true).unwrap();
    store::import(&mut c2, &mut out.as_slice()).unwrap();
    let mut out2 = Vec::new();
    store::export(&c2, &Default::default(), &mut out2).unwrap();
    assert_eq!(out, out2, "export of the import is byte-identical");
    assert_eq!(
        projections::dump::dump_all(&src).unwrap(),
        projections::dump::dump_all(&c2).unwrap()
    );
    let again = store::import(&mut c2, &mut out.as_slice());
    assert!(matches!(again, Err(StoreError::BadImport { .. })));

    // A tampered line is refused, naming its line, and nothing is imported.
    let text = String::from_utf8(out).unwrap().replace("user7", "mallory");
    let dir3 = tempfile::tempdir().unwrap();
    let mut c3 = store::open_offline(&dir3.path().join("restic-manager.db"), true).unwrap();
    match store::import(&mut c3, &mut text.as_bytes()) {
        Err(StoreError::BadImport { line, message }) => {
            assert_eq!(line, 15);
            assert!(message.contains("seq 15"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let n: i64 = c3
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_changed_projection_version_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_store(dir.path());
    for i in 0..10 {
        s.append(AppendRequest::new(
            format!("user-{i}"),
            actor(),
            vec![
                created(&i.to_string(), &format!("u{i}")),
                logged_in(&i.to_string(), i),
            ],
        ))
        .await
        .unwrap();
    }
    let path = s.path().to_path_buf();
    s.close().await;
    let before = projections::dump::dump_all(&Connection::open(&path).unwrap()).unwrap();
    {
        // Simulate an older build's model: wrong version, damaged table.
        let c = Connection::open(&path).unwrap();
        c.execute("UPDATE projection_versions SET version = 0", [])
            .unwrap();
        c.execute("DELETE FROM users WHERE id = '3'", []).unwrap();
    }
    let s = open_store(dir.path());
    s.close().await;
    let c = Connection::open(&path).unwrap();
    assert_eq!(projections::dump::dump_all(&c).unwrap(), before);
    let v: u32 = c
        .query_row(
            "SELECT version FROM projection_versions WHERE name = 'users'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, 1);
    // No scratch database is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rebuild-"))
        .collect();
    assert!(leftovers.is_empty());
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Login(u8),
    Fail(u8),
    FailUnknown,
    Logout(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Create),
        (0u8..6).prop_map(Op::Login),
        (0u8..6).prop_map(Op::Fail),
        Just(Op::FailUnknown),
        (0u8..6).prop_map(Op::Logout),
    ]
}

fn event_of(op: &Op, n: usize) -> Event {
    let id = |u: &u8| format!("u{u}");
    match op {
        Op::Create(u) => created(&id(u), &format!("name{u}-{n}")),
        Op::Login(u) => logged_in(&id(u), n),
        Op::Fail(u) => UserLoginFailed {
            username: format!("name{u}"),
            user_id: Some(id(u)),
            reason: LoginFailure::BadPassword,
            ip: Some("10.0.0.1".into()),
        }
        .into(),
        Op::FailUnknown => UserLoginFailed {
            username: "ghost".into(),
            user_id: None,
            reason: LoginFailure::UnknownUser,
            ip: None,
        }
        .into(),
        Op::Logout(u) => UserLoggedOut {
            user_id: id(u),
            session_id: format!("s{n}"),
        }
        .into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn live_read_models_equal_rebuilt_ones(ops in proptest::collection::vec((op(), 1usize..4), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let s = EventStore::open(&dir.path().join("restic-manager.db"), Arc::new(server::clock::SystemClock),
                StoreOptions { durable: false, ..Default::default() }).unwrap();
            let mut created = std::collections::HashSet::new();
            for (n, (op, batch)) in ops.iter().enumerate() {
                // A user id is created once; later creates of the same id become logins.
                let op = match op {
                    Op::Create(u) if !created.insert(*u) => Op::Login(*u),
                    o => o.clone(),
                };
                let events: Vec<Event> = (0..*batch).map(|k| event_of(&op, n * 10 + k)).take(if matches!(op, Op::Create(_)) { 1 } else { *batch }).collect();
                let stream = events[0].stream();
                s.append(AppendRequest::new(stream, actor(), events)).await.unwrap();
            }
            let path = s.path().to_path_buf();
            s.close().await;

            let mut live = Connection::open(&path).unwrap();
            let live_dump = projections::dump::dump_all(&live).unwrap();

            // Replay into a fresh database: identical.
            let fresh = Connection::open_in_memory().unwrap();
            projections::create_all(&fresh).unwrap();
            store::replay_into(&fresh, &live, projections::registry(), None).unwrap();
            prop_assert_eq!(&projections::dump::dump_all(&fresh).unwrap(), &live_dump);

            // Rebuild-and-swap, twice: still identical.
            store::rebuild(&mut live, &path, &[]).unwrap();
            prop_assert_eq!(&projections::dump::dump_all(&live).unwrap(), &live_dump);
            store::rebuild(&mut live, &path, &[]).unwrap();
            prop_assert_eq!(&projections::dump::dump_all(&live).unwrap(), &live_dump);
            store::verify(&live, None).unwrap();
            Ok(())
        })?;
    }
}
