//! The replay-test harness.
//!
//! Two kinds of test live in this crate:
//!
//! 1. **Given/when/then** over domain decisions ([`given`]): given a history of events,
//!    when a command is decided, then these events (or this error). Every scenario also
//!    checks that the state folded from the emitted events equals the state a fresh fold of
//!    the whole history gives, and equals the state the server would load from the read
//!    model after projecting that history — so decisions, folds and projections cannot
//!    drift apart.
//! 2. **Fixture replay** ([`replay_fixture`]): a recorded history (`fixtures/*.jsonl`, the
//!    exact format of `restic-manager events export`) is imported into a fresh store —
//!    which checks its hash chain and upcasts old event shapes — and the read models are
//!    dumped canonically, to compare with a committed snapshot.
//!
//! `docs/replay-tests.md` walks through writing both.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use domain::hosts::{self, HostCommand, HostsState};
use domain::users::{self, UserCommand, UsersState};
use domain::{DomainError, Event, RecordedEvent};

/// An aggregate: a fold and a decision.
pub trait Aggregate {
    /// What decisions see.
    type State: Default + Clone + PartialEq + Debug;
    /// What can be asked.
    type Command: Debug;
    /// Applies one event.
    fn evolve(state: &mut Self::State, event: &Event);
    /// Decides a command.
    fn decide(state: &Self::State, cmd: &Self::Command) -> Result<Vec<Event>, DomainError>;
    /// The state as the server loads it from the read models after `history` was projected,
    /// if this aggregate has such a loader.
    fn load_projected(history: &[Event]) -> Option<Self::State>;
}

/// The users/auth aggregate.
pub struct Users;

impl Aggregate for Users {
    type State = UsersState;
    type Command = UserCommand;
    fn evolve(state: &mut UsersState, event: &Event) {
        state.evolve(event);
    }
    fn decide(state: &UsersState, cmd: &UserCommand) -> Result<Vec<Event>, DomainError> {
        users::decide(state, cmd)
    }
    fn load_projected(history: &[Event]) -> Option<UsersState> {
        let conn = project(history);
        Some(projections::users::load_state(&conn).expect("load users state"))
    }
}

/// The hosts aggregate.
pub struct Hosts;

impl Aggregate for Hosts {
    type State = HostsState;
    type Command = HostCommand;
    fn evolve(state: &mut HostsState, event: &Event) {
        state.evolve(event);
    }
    fn decide(state: &HostsState, cmd: &HostCommand) -> Result<Vec<Event>, DomainError> {
        hosts::decide(state, cmd)
    }
    fn load_projected(history: &[Event]) -> Option<HostsState> {
        let conn = project(history);
        let mut state = HostsState::default();
        for e in history {
            if let Event::HostEnrolled(h) = e {
                let one = projections::hosts::load_state(&conn, &h.host_id).expect("load host");
                state.hosts.extend(one.hosts);
            }
        }
        Some(state)
    }
}

/// One host's backup configuration (source groups, schedules, maintenance, hooks), for
/// host `h1`.
pub struct HostConfigOf;

impl Aggregate for HostConfigOf {
    type State = domain::sources::HostConfig;
    type Command = domain::sources::ConfigCommand;
    fn evolve(state: &mut Self::State, event: &Event) {
        state.evolve(event);
    }
    fn decide(state: &Self::State, cmd: &Self::Command) -> Result<Vec<Event>, DomainError> {
        domain::sources::decide(state, "h1", cmd)
    }
    fn load_projected(history: &[Event]) -> Option<Self::State> {
        let conn = project(history);
        Some(projections::config::load_config(&conn, "h1").expect("load host config"))
    }
}

/// Projects events (wrapped in synthetic envelopes) into a fresh in-memory read model.
pub fn project(history: &[Event]) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().expect("in-memory sqlite");
    projections::create_all(&conn).expect("schema");
    for (i, e) in history.iter().enumerate() {
        let rec = RecordedEvent {
            seq: i as i64 + 1,
            event_id: format!("e{i}"),
            stream: e.stream(),
            stream_version: 1,
            event_type: e.event_type().to_string(),
            schema_version: e.schema_version(),
            data: e.data_json(),
            actor: "system:replay-test".into(),
            occurred_at: format!("2026-01-01T00:00:{:02}.000000Z", i % 60),
            correlation_id: None,
            causation_id: None,
            command_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        };
        projections::apply_decoded(&conn, projections::registry(), &rec, e).expect("apply");
    }
    conn
}

/// Starts a scenario.
pub fn given<A: Aggregate>(history: Vec<Event>) -> Given<A> {
    Given {
        history,
        _a: std::marker::PhantomData,
    }
}

/// A history.
pub struct Given<A: Aggregate> {
    history: Vec<Event>,
    _a: std::marker::PhantomData<A>,
}

impl<A: Aggregate> Given<A> {
    /// Decides a command against the folded history.
    pub fn when(self, cmd: A::Command) -> Then<A> {
        let mut state = A::State::default();
        for e in &self.history {
            A::evolve(&mut state, e);
        }
        let result = A::decide(&state, &cmd);
        Then {
            history: self.history,
            state_before: state,
            cmd,
            result,
        }
    }
}

/// The outcome of a decision, to check.
pub struct Then<A: Aggregate> {
    history: Vec<Event>,
    state_before: A::State,
    cmd: A::Command,
    result: Result<Vec<Event>, DomainError>,
}

impl<A: Aggregate> Then<A> {
    /// Expects exactly these events, and checks the folds agree. Returns the state after.
    pub fn then(self, expected: Vec<Event>) -> A::State {
        let emitted = match &self.result {
            Ok(e) => e.clone(),
            Err(err) => panic!(
                "{:?} was refused with {err:?}; expected {expected:?}",
                self.cmd
            ),
        };
        assert_eq!(emitted, expected, "events decided for {:?}", self.cmd);
        self.folds_agree(&emitted)
    }

    /// Expects the decision to be refused with this error.
    pub fn then_error(self, expected: DomainError) {
        match self.result {
            Err(e) => assert_eq!(e, expected, "error for {:?}", self.cmd),
            Ok(events) => panic!(
                "{:?} was accepted with {events:?}; expected {expected:?}",
                self.cmd
            ),
        }
    }

    fn folds_agree(&self, emitted: &[Event]) -> A::State {
        let mut after = self.state_before.clone();
        for e in emitted {
            A::evolve(&mut after, e);
        }
        let mut fresh = A::State::default();
        for e in self.history.iter().chain(emitted) {
            A::evolve(&mut fresh, e);
        }
        assert_eq!(
            after, fresh,
            "folding the emitted events onto the state the decision saw"
        );
        let all: Vec<Event> = self.history.iter().chain(emitted).cloned().collect();
        if let Some(projected) = A::load_projected(&all) {
            assert_eq!(after, projected, "the state loaded from the read model");
        }
        after
    }
}

/// The fixtures folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A replayed fixture.
pub struct Replayed {
    /// Events in the fixture.
    pub events: u64,
    /// The canonical dump of every read model.
    pub read_models: String,
    /// The store's database (kept alive while the value lives).
    pub dir: tempfile::TempDir,
}

/// Imports a fixture into a fresh store (checking its chain, upcasting old shapes,
/// applying projections) and dumps the read models.
pub fn replay_fixture(path: &Path) -> Result<Replayed, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = dir.path().join("restic-manager.db");
    let mut conn = server::store::open_offline(&db, true).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let events = server::store::import(&mut conn, &mut std::io::BufReader::new(file))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let read_models = projections::dump::dump_all(&conn).map_err(|e| e.to_string())?;
    Ok(Replayed {
        events,
        read_models,
        dir,
    })
}
