//! Users and auth decisions.

use domain::event::{UserCreated, UserLoggedIn, UserLoggedOut, UserLoginFailed};
use domain::users::{LoginFailure, Role, UserCommand};
use domain::validation::Username;
use domain::{DomainError, Event};
use replay_tests::{given, Users};

fn admin_created() -> Event {
    UserCreated {
        user_id: "u1".into(),
        username: "admin".into(),
        role: Role::Admin,
        password_ref: "password-u1".into(),
        via_setup: true,
    }
    .into()
}

fn setup() -> UserCommand {
    UserCommand::CompleteSetup {
        user_id: "u1".into(),
        username: Username::parse("admin").unwrap(),
        password_ref: "password-u1".into(),
        session_id: "s1".into(),
        ip: Some("127.0.0.1".into()),
    }
}

fn login(name: &str, ok: bool) -> UserCommand {
    UserCommand::RecordLogin {
        username: name.into(),
        password_ok: ok,
        session_id: "s2".into(),
        ip: None,
    }
}

#[test]
fn first_run_setup_creates_the_admin_and_logs_them_in() {
    let state = given::<Users>(vec![]).when(setup()).then(vec![
        admin_created(),
        UserLoggedIn {
            user_id: "u1".into(),
            session_id: "s1".into(),
            ip: Some("127.0.0.1".into()),
        }
        .into(),
    ]);
    assert!(state.is_set_up());
}

#[test]
fn setup_happens_once() {
    given::<Users>(vec![admin_created()])
        .when(setup())
        .then_error(DomainError::AlreadyBootstrapped);
}

#[test]
fn a_good_password_opens_a_session() {
    given::<Users>(vec![admin_created()])
        .when(login("admin", true))
        .then(vec![UserLoggedIn {
            user_id: "u1".into(),
            session_id: "s2".into(),
            ip: None,
        }
        .into()]);
}

#[test]
fn a_bad_password_is_recorded_against_the_account() {
    given::<Users>(vec![admin_created()])
        .when(login("admin", false))
        .then(vec![UserLoginFailed {
            username: "admin".into(),
            user_id: Some("u1".into()),
            reason: LoginFailure::BadPassword,
            ip: None,
        }
        .into()]);
}

#[test]
fn an_unknown_name_never_logs_in_even_if_the_edge_said_ok() {
    given::<Users>(vec![admin_created()])
        .when(login("mallory", true))
        .then(vec![UserLoginFailed {
            username: "mallory".into(),
            user_id: None,
            reason: LoginFailure::UnknownUser,
            ip: None,
        }
        .into()]);
}

#[test]
fn usernames_are_unique_and_accounts_need_setup_first() {
    let create = |name: &str| UserCommand::CreateUser {
        user_id: "u2".into(),
        username: Username::parse(name).unwrap(),
        role: Role::Viewer,
        password_ref: "password-u2".into(),
    };
    given::<Users>(vec![])
        .when(create("viewer"))
        .then_error(DomainError::NotBootstrapped);
    given::<Users>(vec![admin_created()])
        .when(create("admin"))
        .then_error(DomainError::UsernameTaken("admin".into()));
    let state = given::<Users>(vec![admin_created()])
        .when(create("viewer"))
        .then(vec![UserCreated {
            user_id: "u2".into(),
            username: "viewer".into(),
            role: Role::Viewer,
            password_ref: "password-u2".into(),
            via_setup: false,
        }
        .into()]);
    assert_eq!(state.users.len(), 2);
}

#[test]
fn logout_needs_a_known_user() {
    given::<Users>(vec![admin_created()])
        .when(UserCommand::Logout {
            user_id: "u1".into(),
            session_id: "s1".into(),
        })
        .then(vec![UserLoggedOut {
            user_id: "u1".into(),
            session_id: "s1".into(),
        }
        .into()]);
    given::<Users>(vec![])
        .when(UserCommand::Logout {
            user_id: "ghost".into(),
            session_id: "s1".into(),
        })
        .then_error(DomainError::UnknownUser);
}
