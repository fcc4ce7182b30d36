//! Old event shapes, read as current ones.
//!
//! The log is append-only, so a payload written by an older build stays in its old shape
//! forever. On every read, [`decode`] walks the stored `(type, schema_version)` forward one
//! version at a time until it reaches the shape this build understands. Projections and
//! decisions therefore only ever see current shapes.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::DomainError;
use crate::event::Event;

/// One step: turns version `from` of `event_type` into version `from + 1`.
struct Step {
    event_type: &'static str,
    from: u32,
    apply: fn(&mut Map<String, Value>),
}

/// The registry of every shape change ever made.
const STEPS: &[Step] = &[
    // UserLoginFailed v1 was `{username, user_id?, ip?}`. v2 says why the login was refused; a v1
    // record cannot tell, so it reads as a bad password (the only reason v1 recorded).
    Step {
        event_type: "UserLoginFailed",
        from: 1,
        apply: |m| {
            m.entry("reason")
                .or_insert_with(|| Value::String("bad_password".into()));
        },
    },
];

/// Brings stored JSON up to the current schema of its type. Borrowed when nothing changes,
/// which is the common case and keeps replay fast.
pub fn upcast<'a>(
    event_type: &str,
    schema_version: u32,
    data: &'a str,
) -> Result<Cow<'a, str>, DomainError> {
    let err = |message: String| DomainError::UndecodableEvent {
        event_type: event_type.to_string(),
        schema_version,
        message,
    };
    let current =
        Event::current_version(event_type).ok_or_else(|| err("unknown event type".into()))?;
    if schema_version == current {
        return Ok(Cow::Borrowed(data));
    }
    if schema_version > current {
        return Err(err(format!(
            "written by a newer build (this build reads up to v{current})"
        )));
    }
    let mut value: Value = serde_json::from_str(data).map_err(|e| err(e.to_string()))?;
    let map = value
        .as_object_mut()
        .ok_or_else(|| err("payload is not a JSON object".into()))?;
    for v in schema_version..current {
        let step = STEPS
            .iter()
            .find(|s| s.event_type == event_type && s.from == v)
            .ok_or_else(|| err(format!("no upcaster from v{v}")))?;
        (step.apply)(map);
    }
    Ok(Cow::Owned(value.to_string()))
}

/// Decodes a stored payload of any known version into the current [`Event`].
pub fn decode(event_type: &str, schema_version: u32, data: &str) -> Result<Event, DomainError> {
    let data = upcast(event_type, schema_version, data)?;
    Event::decode_current(event_type, &data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::UserLoginFailed;
    use crate::users::LoginFailure;

    #[test]
    fn login_failed_v1_reads_as_v2() {
        let e = decode(
            "UserLoginFailed",
            1,
            r#"{"username":"bob","ip":"10.0.0.1"}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            Event::UserLoginFailed(UserLoginFailed {
                username: "bob".into(),
                user_id: None,
                reason: LoginFailure::BadPassword,
                ip: Some("10.0.0.1".into()),
            })
        );
    }

    #[test]
    fn current_shape_is_borrowed() {
        let data = r#"{"user_id":"u","session_id":"s"}"#;
        assert!(matches!(
            upcast("UserLoggedOut", 1, data).unwrap(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn newer_and_unknown_shapes_are_clear_errors() {
        let e = decode("UserLoggedOut", 9, "{}").unwrap_err();
        assert!(e.to_string().contains("newer build"), "{e}");
        assert!(decode("Nope", 1, "{}").is_err());
    }

    #[test]
    fn every_step_targets_a_known_type_below_its_current_version() {
        for s in STEPS {
            let cur = Event::current_version(s.event_type).expect("known type");
            assert!(s.from < cur, "{} v{} is not old", s.event_type, s.from);
        }
    }
}
