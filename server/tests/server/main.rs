//! Integration tests of the server crate: one binary, a module per feature.

mod helpers;

mod agents;
mod alerts;
mod audit;
mod auth;
mod backups;
mod bad_input;
mod browser;
mod cli;
mod history;
mod install;
mod pages;
mod restore;
mod restore_pages;
mod schedules;
mod secrets;
mod store;
