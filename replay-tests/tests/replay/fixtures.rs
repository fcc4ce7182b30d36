//! Every `fixtures/*.jsonl` replays (chain checked, old shapes upcast) into read models
//! equal to its committed snapshot `fixtures/<name>.snap`.
//!
//! A new fixture needs a snapshot: run `INSTA_UPDATE=always cargo test -p replay-tests`
//! once, read the new `.snap` file, and commit both.

use replay_tests::{fixtures_dir, replay_fixture};

#[test]
fn every_fixture_replays_to_its_committed_read_models() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let replayed = replay_fixture(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(replayed.events > 0, "{name} is empty");
        insta::with_settings!({
            snapshot_path => fixtures_dir(),
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => format!("read models after replaying {name}.jsonl ({} events)", replayed.events),
        }, {
            insta::assert_snapshot!(name.clone(), replayed.read_models);
        });
        names.push(name);
    }
    assert!(
        names.iter().any(|n| n == "users_auth"),
        "the users/auth story is recorded: {names:?}"
    );
}

#[test]
fn a_tampered_fixture_is_refused() {
    let text = std::fs::read_to_string(fixtures_dir().join("users_auth.jsonl")).unwrap();
    let tampered = text.replacen("\"role\":\"operator\"", "\"role\":\"admin\"", 1);
    assert_ne!(text, tampered, "the fixture has an operator to promote");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tampered.jsonl");
    std::fs::write(&path, tampered).unwrap();
    let err = replay_fixture(&path).err().expect("refused");
    assert!(err.contains("hash does not match"), "{err}");
}

#[test]
fn an_old_event_shape_replays_like_the_current_one() {
    // The same history, but its failed login written in schema v1 (before `reason`).
    let old = fixtures_dir().join("users_auth_login_failed_v1.jsonl");
    let text = std::fs::read_to_string(&old).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("\"type\":\"UserLoginFailed\",\"schema_version\":1,")),
        "the fixture holds a v1 event"
    );
    let current = replay_fixture(&fixtures_dir().join("users_auth.jsonl")).unwrap();
    let upcast = replay_fixture(&old).unwrap();
    assert_eq!(upcast.read_models, current.read_models);
}
