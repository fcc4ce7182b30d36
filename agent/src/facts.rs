//! What the agent reports about its host.

use std::time::Duration;

/// The restic binary: `RM_RESTIC`, or `restic` on the PATH.
pub fn restic_binary() -> String {
    std::env::var("RM_RESTIC").unwrap_or_else(|_| "restic".to_string())
}

/// The host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// The agent's effective user id, from `/proc/self/status` (Linux); `None` elsewhere.
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

/// The second number of the `Uid:` line (real, effective, saved, filesystem).
fn parse_effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `restic version`, parsed (`0.14.0`); empty when restic is missing or silent.
pub async fn restic_version() -> String {
    restic_version_of(&restic_binary()).await
}

/// `bin version`, parsed; empty when it is missing or silent.
pub async fn restic_version_of(bin: &str) -> String {
    let run = tokio::process::Command::new(bin)
        .arg("version")
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(out)) if out.status.success() => parse_version(&String::from_utf8_lossy(&out.stdout)),
        _ => String::new(),
    }
}

/// `restic 0.14.0 compiled with go1.19.8 on linux/amd64` → `0.14.0`; also accepts the JSON
/// of `restic version --json` (0.17+).
pub fn parse_version(text: &str) -> String {
    let text = text.trim();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(s) = v.get("version").and_then(|s| s.as_str()) {
            return s.to_string();
        }
    }
    text.split_whitespace()
        .nth(1)
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_json_versions() {
        assert_eq!(
            parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n"),
            "0.14.0"
        );
        assert_eq!(
            parse_version(r#"{"message_type":"version","version":"0.17.3","go_version":"go1.23"}"#),
            "0.17.3"
        );
        assert_eq!(parse_version("garbage"), "");
    }

    #[test]
    fn effective_uid_is_the_second_field() {
        assert_eq!(
            parse_effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t5\n"),
            Some(0)
        );
        assert_eq!(parse_effective_uid("Name: x"), None);
        assert!(effective_uid().is_some());
    }
}
