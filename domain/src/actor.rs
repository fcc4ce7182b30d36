//! Who caused an event: a user, an agent or a part of the system.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The author of an event, stored as `user:<id>`, `agent:<host>` or `system:<component>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A logged-in person.
    User(String),
    /// An enrolled agent, by host id.
    Agent(String),
    /// A component of the server (bootstrap, sweeper, scheduler, …), or an anonymous caller
    /// such as someone failing to log in.
    System(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::Agent(id) => write!(f, "agent:{id}"),
            Actor::System(c) => write!(f, "system:{c}"),
        }
    }
}

/// The text was not `kind:value`.
#[derive(Debug, thiserror::Error)]
#[error("not an actor (expected user:<id>, agent:<host> or system:<component>): {0:?}")]
pub struct BadActor(pub String);

impl FromStr for Actor {
    type Err = BadActor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| BadActor(s.into()))?;
        if rest.is_empty() {
            return Err(BadActor(s.into()));
        }
        match kind {
            "user" => Ok(Actor::User(rest.into())),
            "agent" => Ok(Actor::Agent(rest.into())),
            "system" => Ok(Actor::System(rest.into())),
            _ => Err(BadActor(s.into())),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for a in ["user:u1", "agent:h-2", "system:bootstrap"] {
            assert_eq!(a.parse::<Actor>().unwrap().to_string(), a);
        }
        assert!("robot:x".parse::<Actor>().is_err());
        assert!("user:".parse::<Actor>().is_err());
    }
}
