//! Pre- and post-backup hooks: operator shell scripts run with `/bin/sh -c`.
//!
//! A hook runs in its own process group, so a cancel or a timeout stops the script *and*
//! whatever it started (a `pg_dump`, a `sleep`), not just the shell. Every line it prints,
//! on stdout or stderr, goes to the job log prefixed `hook: `, so an operator can tell the
//! script's words from restic's.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, watch};

use crate::restic::{self, Event};

/// How long a hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(3600);

/// After SIGTERM, how long the group has before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// After the script exits, how long we keep reading what its leftover children still print
/// on the inherited pipes (a background `&` would otherwise hold the job open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEnd {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (not by us).
    Signalled(i32),
    /// Ran longer than its timeout and was killed.
    TimedOut(Duration),
    /// Stopped because the job was cancelled.
    Cancelled,
    /// Could not be started.
    NotStarted(String),
}

impl HookEnd {
    /// Whether the hook succeeded.
    pub fn ok(&self) -> bool {
        *self == HookEnd::Exited(0)
    }

    /// "pre-hook failed with exit status 3" and friends (`which` is `pre-hook`/`post-hook`).
    pub fn describe(&self, which: &str) -> String {
        match self {
            HookEnd::Exited(0) => format!("{which} succeeded"),
            HookEnd::Exited(c) => format!("{which} failed with exit status {c}"),
            HookEnd::Signalled(s) => format!("{which} failed: killed by signal {s}"),
            HookEnd::TimedOut(t) => {
                format!(
                    "{which} failed: still running after {} s, killed",
                    t.as_secs()
                )
            }
            HookEnd::Cancelled => format!("{which} stopped: the job was cancelled"),
            HookEnd::NotStarted(e) => format!("{which} failed: cannot start /bin/sh: {e}"),
        }
    }
}

/// Runs `script` with `/bin/sh -c`, `env` added to the agent's environment, stdin from
/// `/dev/null`, in `/`. Log lines go to `events`; a change of `cancel` to true (after the
/// call starts) or `timeout` kills the hook's process group.
pub async fn run(
    script: &str,
    env: &[(String, String)],
    timeout: Duration,
    events: &mpsc::UnboundedSender<Event>,
    mut cancel: watch::Receiver<bool>,
) -> HookEnd {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookEnd::NotStarted(e.to_string()),
    };
    let pgid = child.id().map(|p| p as i32);
    let (line_tx, mut line_rx) = mpsc::unbounded_channel::<(&'static str, String)>();
    let pump = |stream: &'static str, r: Option<Box<dyn AsyncRead + Send + Unpin>>| {
        let tx = line_tx.clone();
        tokio::spawn(async move {
            let Some(r) = r else { return };
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tx.send((stream, l)).is_err() {
                    return;
                }
            }
        })
    };
    let out = pump("stdout", child.stdout.take().map(|s| Box::new(s) as Box<_>));
    let err = pump("stderr", child.stderr.take().map(|s| Box::new(s) as Box<_>));
    drop(line_tx);
    let forward = |stream: &'static str, l: String| {
        let _ = events.send(restic::log(stream, &format!("hook: {l}")));
    };
    // The caller has already seen any earlier cancel: only a new one stops this hook.
    cancel.borrow_and_update();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut stopped: Option<HookEnd> = None;
    // False once the job's cancel channel is gone: nobody can cancel any more.
    let mut cancellable = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some((stream, l)) = line_rx.recv() => forward(stream, l),
            changed = cancel.changed(), if stopped.is_none() && cancellable => {
                if changed.is_err() {
                    cancellable = false;
                } else if *cancel.borrow() {
                    let _ = events.send(Event::Log("agent", "cancel requested: stopping the hook".into()));
                    stopped = Some(HookEnd::Cancelled);
                    kill_group(pgid, &mut child).await;
                }
            }
            _ = &mut deadline, if stopped.is_none() => {
                stopped = Some(HookEnd::TimedOut(timeout));
                kill_group(pgid, &mut child).await;
            }
        }
    };
    // What is still in the pipes, for a short while (a background child may keep them open).
    let drain = async {
        while let Some((stream, l)) = line_rx.recv().await {
            forward(stream, l);
        }
    };
    let _ = tokio::time::timeout(DRAIN_GRACE, drain).await;
    out.abort();
    err.abort();
    if let Some(s) = stopped {
        return s;
    }
    match status {
        Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
            (Some(c), _) => HookEnd::Exited(c),
            (None, Some(sig)) => HookEnd::Signalled(sig),
            (None, None) => HookEnd::Exited(-1),
        },
        Err(e) => HookEnd::NotStarted(e.to_string()),
    }
}

/// SIGTERM to the hook's process group, SIGKILL after [`TERM_GRACE`].
async fn kill_group(pgid: Option<i32>, child: &mut tokio::process::Child) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    let Some(pgid) = pgid else {
        let _ = child.start_kill();
        return;
    };
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    if tokio::time::timeout(TERM_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    } else {
        // The shell is gone; children that ignored SIGTERM still go.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run_script(
        script: &str,
        env: &[(&str, &str)],
        timeout: Duration,
        cancel: watch::Receiver<bool>,
    ) -> (HookEnd, Vec<(&'static str, String)>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let end = run(script, &env, timeout, &tx, cancel).await;
        drop(tx);
        let mut lines = vec![];
        while let Some(Event::Log(s, t)) = rx.recv().await {
            lines.push((s, t));
        }
        (end, lines)
    }

    #[tokio::test]
    async fn lines_are_prefixed_and_env_is_passed() {
        let (_keep, rx) = watch::channel(false);
        let (end, lines) = run_script(
            "echo \"out $RM_JOB_ID\"; echo err >&2; exit 0",
            &[("RM_JOB_ID", "j-1")],
            Duration::from_secs(30),
            rx,
        )
        .await;
        assert_eq!(end, HookEnd::Exited(0));
        assert!(end.ok());
        assert!(lines.contains(&("stdout", "hook: out j-1".to_string())));
        assert!(lines.contains(&("stderr", "hook: err".to_string())));
    }

    #[tokio::test]
    async fn exit_status_and_description() {
        let (_keep, rx) = watch::channel(false);
        let (end, _) = run_script("exit 3", &[], Duration::from_secs(30), rx).await;
        assert_eq!(end, HookEnd::Exited(3));
        assert_eq!(
            end.describe("pre-hook"),
            "pre-hook failed with exit status 3"
        );
        assert!(!end.ok());
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let (_keep, rx) = watch::channel(false);
        // The background sleeper is the shell's child: killing only the shell would leave
        // it to touch the marker.
        let script = format!(
            "(sleep 2; touch {}) & echo started; sleep 30",
            marker.display()
        );
        let t = std::time::Instant::now();
        let (end, lines) = run_script(&script, &[], Duration::from_millis(300), rx).await;
        assert_eq!(end, HookEnd::TimedOut(Duration::from_millis(300)));
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(lines.contains(&("stdout", "hook: started".to_string())));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the group's other process was not killed");
    }

    #[tokio::test]
    async fn a_cancel_stops_it() {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            run_script("echo go; sleep 30", &[], Duration::from_secs(60), rx).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(true).unwrap();
        let (end, _) = tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the hook stopped")
            .unwrap();
        assert_eq!(end, HookEnd::Cancelled);
    }
}
