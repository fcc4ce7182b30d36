//! An event as the log stores it, and the hash chain that makes edits evident.
//!
//! [`RecordedEvent`] is also the fixture format: `events export` writes one per line as JSON
//! and `events import` reads them back byte for byte, so the hashes still match.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::error::DomainError;
use crate::event::Event;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored event with its envelope. Text fields hold the exact stored bytes, because
/// they are hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global, gap-free position in the log.
    pub seq: i64,
    /// Unique id of the event (UUIDv7).
    pub event_id: String,
    /// The stream it belongs to, e.g. `user-<id>`.
    pub stream: String,
    /// Its position in the stream, from 1.
    pub stream_version: i64,
    /// The event type, e.g. `UserLoggedIn`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload's schema version as written.
    pub schema_version: u32,
    /// The payload, as stored.
    #[serde(with = "raw_json")]
    pub data: String,
    /// `user:<id>`, `agent:<host>` or `system:<component>`.
    pub actor: String,
    /// When, from the server's clock, canonical RFC 3339.
    pub occurred_at: String,
    /// Groups the events of one flow (e.g. one job).
    pub correlation_id: Option<String>,
    /// The event or command that caused this one.
    pub causation_id: Option<String>,
    /// The command that appended it; a repeated command id appends nothing.
    pub command_id: Option<String>,
    /// Hash of the previous event (or [`GENESIS_HASH`]).
    pub prev_hash: String,
    /// SHA-256 over this row's canonical bytes, hex.
    pub hash: String,
}

impl RecordedEvent {
    /// The hash this row should carry, computed from its other fields.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        let opt = |o: &Option<String>| match o {
            Some(s) => format!("1{s}"),
            None => "0".to_string(),
        };
        field(self.seq.to_string().as_bytes());
        field(self.event_id.as_bytes());
        field(self.stream.as_bytes());
        field(self.stream_version.to_string().as_bytes());
        field(self.event_type.as_bytes());
        field(self.schema_version.to_string().as_bytes());
        field(self.data.as_bytes());
        field(self.actor.as_bytes());
        field(self.occurred_at.as_bytes());
        field(opt(&self.correlation_id).as_bytes());
        field(opt(&self.causation_id).as_bytes());
        field(opt(&self.command_id).as_bytes());
        field(self.prev_hash.as_bytes());
        hex::encode(h.finalize())
    }

    /// The payload decoded (and upcast) to the current [`Event`].
    pub fn decode(&self) -> Result<Event, DomainError> {
        crate::upcast::decode(&self.event_type, self.schema_version, &self.data)
    }
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFault {
    /// `seq` is not one more than the previous row's.
    Gap {
        /// The sequence number expected here.
        expected: i64,
    },
    /// `prev_hash` does not name the previous row's hash.
    BrokenLink,
    /// `hash` does not match the row's contents.
    BadHash,
}

/// Checks one row against the one before it (or the genesis when `prev` is `None`).
pub fn check_link(prev: Option<(i64, &str)>, row: &RecordedEvent) -> Result<(), ChainFault> {
    let (prev_seq, prev_hash) = prev.unwrap_or((0, GENESIS_HASH));
    if row.seq != prev_seq + 1 {
        return Err(ChainFault::Gap {
            expected: prev_seq + 1,
        });
    }
    if row.prev_hash != prev_hash {
        return Err(ChainFault::BrokenLink);
    }
    if row.compute_hash() != row.hash {
        return Err(ChainFault::BadHash);
    }
    Ok(())
}

mod raw_json {
    use super::RawValue;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(data: &str, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(data).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(raw.get().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: &str) -> RecordedEvent {
        let mut r = RecordedEvent {
            seq,
            event_id: format!("e{seq}"),
            stream: "user-1".into(),
            stream_version: seq,
            event_type: "UserLoggedOut".into(),
            schema_version: 1,
            data: r#"{"user_id":"1","session_id":"s"}"#.into(),
            actor: "user:1".into(),
            occurred_at: "2026-01-01T00:00:00.000000Z".into(),
            correlation_id: None,
            causation_id: Some("c".into()),
            command_id: None,
            prev_hash: prev.into(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }

    #[test]
    fn chain_detects_edits_gaps_and_broken_links() {
        let a = row(1, GENESIS_HASH);
        let b = row(2, &a.hash);
        assert_eq!(check_link(None, &a), Ok(()));
        assert_eq!(check_link(Some((1, &a.hash)), &b), Ok(()));

        let mut edited = b.clone();
        edited.data = r#"{"user_id":"2","session_id":"s"}"#.into();
        assert_eq!(
            check_link(Some((1, &a.hash)), &edited),
            Err(ChainFault::BadHash)
        );
        assert_eq!(check_link(Some((1, "ff")), &b), Err(ChainFault::BrokenLink));
        assert_eq!(check_link(None, &b), Err(ChainFault::Gap { expected: 1 }));
    }

    #[test]
    fn none_and_empty_optional_fields_hash_differently() {
        let a = row(1, GENESIS_HASH);
        let mut b = a.clone();
        b.causation_id = None;
        let mut c = a.clone();
        c.causation_id = Some(String::new());
        assert_ne!(b.compute_hash(), c.compute_hash());
    }

    #[test]
    fn json_line_keeps_payload_bytes() {
        let a = row(1, GENESIS_HASH);
        let line = serde_json::to_string(&a).unwrap();
        assert!(
            line.contains(r#""data":{"user_id":"1","session_id":"s"}"#),
            "{line}"
        );
        let back: RecordedEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, a);
        assert_eq!(check_link(None, &back), Ok(()));
    }
}
