//! Connected agents: the registry of live sockets, the WebSocket session, and the sweeper
//! that marks silent hosts offline.
//!
//! Heartbeats only refresh an in-memory `last_seen`; only transitions (online, offline) are
//! events.

pub mod registry;
pub mod sweeper;
pub mod ws;

pub use registry::Registry;
