//! Replay tests: decisions (given/when/then) and recorded histories (fixtures).

mod fixtures;
mod hosts;
mod sources;
mod users;
