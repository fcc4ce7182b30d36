//! Server-rendered pages of restic-manager.
