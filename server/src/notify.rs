//! Notification channels and the notifier.
//!
//! The notifier is a consumer of the event log: for every `AlertRaised` / `AlertResolved`
//! after its checkpoint it queues one `NotificationQueued` per matching channel, moving the
//! checkpoint in the same transaction (so a restart neither loses nor repeats one). A delivery
//! loop sends what is queued and records every attempt (`NotificationAttempted`), retrying
//! with backoff. On shutdown it finishes and records the delivery in flight first.
//! Webhook bodies carry `X-RM-Notification-Id`, so a receiver can drop the duplicate that
//! only a crash between sending and recording could cause.

use std::time::Duration;

use domain::alerts::{
    self, AlertKind, ChannelDeleted, ChannelKind, ChannelSaved, NotificationAttempted,
    NotificationQueued,
};
use domain::{Actor, DomainError, Event, Timestamp};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::alerts::{checkpoint, set_checkpoint};
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::{query_events, AppendRequest, EventQuery};

/// The notifier's name in `consumer_checkpoints`.
pub const CONSUMER: &str = "notifier";

/// The webhook signature header: `sha256=<hex HMAC-SHA256 of the body with the secret>`.
pub const SIGNATURE_HEADER: &str = "x-rm-signature";

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn secret_ref(channel_id: &str) -> String {
    format!("channel-secret-{channel_id}")
}

/// A channel as typed (API and settings page).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// webhook, ntfy, email.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Settings; secrets in it (`secret`, `token`, `password`) go to the vault.
    #[serde(default)]
    pub config: Value,
    /// Alert kinds (empty: all).
    #[serde(default)]
    pub alert_kinds: Vec<String>,
}

/// Webhook settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    url: String,
}

/// ntfy settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NtfyConfig {
    /// The full topic URL, e.g. `https://ntfy.sh/my-backups`.
    url: String,
}

/// SMTP settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailConfig {
    smtp_host: String,
    #[serde(default = "default_port")]
    smtp_port: u16,
    /// `none`, `starttls` or `tls`.
    #[serde(default = "default_security")]
    security: String,
    #[serde(default)]
    username: Option<String>,
    from: String,
    to: Vec<String>,
}

fn default_port() -> u16 {
    587
}

fn default_security() -> String {
    "starttls".into()
}

fn invalid(field: &'static str, m: impl Into<String>) -> AppError {
    DomainError::invalid(field, m).into()
}

fn check_url(u: &str) -> Result<(), AppError> {
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() < 2048
        && !u.chars().any(|c| c.is_control() || c.is_whitespace())
        && u.split("://").nth(1).is_some_and(|h| !h.is_empty());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "config",
            "url must be an http:// or https:// address",
        ))
    }
}

/// Splits typed settings into the stored (public) config and the secret.
fn validate(
    input: &ChannelInput,
) -> Result<(ChannelKind, Value, Option<String>, Vec<AlertKind>), AppError> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(invalid("name", "must be 1 to 100 characters on one line"));
    }
    let mut kinds = Vec::new();
    for k in &input.alert_kinds {
        kinds.push(AlertKind::parse(k).ok_or_else(|| {
            invalid(
                "alert_kinds",
                format!(
                    "{k:?} is not an alert kind (use {})",
                    AlertKind::ALL.map(|k| k.as_str()).join(", ")
                ),
            )
        })?);
    }
    let mut config = match &input.config {
        Value::Object(m) => m.clone(),
        Value::Null => Default::default(),
        _ => return Err(invalid("config", "must be an object")),
    };
    let take = |m: &mut serde_json::Map<String, Value>, k: &str| -> Option<String> {
        m.remove(k)
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|s| !s.is_empty())
    };
    let bad = |e: serde_json::Error| invalid("config", e.to_string());
    let (kind, public, secret) = match input.kind.as_str() {
        "webhook" => {
            let secret = take(&mut config, "secret");
            let c: WebhookConfig = serde_json::from_value(Value::Object(config)).map_err(bad)?;
            check_url(&c.url)?;
            (
                ChannelKind::Webhook,
                serde_json::to_value(c).unwrap_or_default(),
                secret,
            )
        }
        "ntfy" => {
            let secret = take(&mut config, "token");
            let c: NtfyConfig = serde_json::from_value(Value::Object(config)).map_err(bad)?;
            check_url(&c.url)?;
            (
                ChannelKind::Ntfy,
                serde_json::to_value(c).unwrap_or_default(),
                secret,
            )
        }
        "email" => {
            let secret = take(&mut config, "password");
            let c: EmailConfig = serde_json::from_value(Value::Object(config)).map_err(bad)?;
            if c.smtp_host.trim().is_empty()
                || c.smtp_host
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(invalid("config", "smtp_host is required"));
            }
            if !matches!(c.security.as_str(), "none" | "starttls" | "tls") {
                return Err(invalid("config", "security must be none, starttls or tls"));
            }
            for a in std::iter::once(&c.from).chain(c.to.iter()) {
                a.parse::<lettre::message::Mailbox>().map_err(|e| {
                    invalid("config", format!("{a:?} is not an email address: {e}"))
                })?;
            }
            if c.to.is_empty() {
                return Err(invalid("config", "to needs at least one address"));
            }
            (
                ChannelKind::Email,
                serde_json::to_value(c).unwrap_or_default(),
                secret,
            )
        }
        _ => return Err(invalid("kind", "must be webhook, ntfy or email")),
    };
    Ok((kind, public, secret, kinds))
}

/// Creates (`id` None) or replaces a channel. A replace without a secret keeps the stored one.
pub async fn save_channel(
    state: &AppState,
    actor: Actor,
    id: Option<String>,
    input: ChannelInput,
) -> Result<String, AppError> {
    let (kind, config, secret, alert_kinds) = validate(&input)?;
    let vault = state.vault.clone();
    let name = input.name.trim().to_string();
    state
        .store
        .write(move |uow| -> Result<String, AppError> {
            let creating = id.is_none();
            let channel_id = id.unwrap_or_else(new_id);
            if !creating && projections::alerts::channel(uow.conn(), &channel_id)?.is_none() {
                return Err(DomainError::UnknownChannel.into());
            }
            let r = secret_ref(&channel_id);
            if let Some(s) = &secret {
                let now = uow.now().to_string();
                vault.put(
                    uow.conn(),
                    &r,
                    &format!("channel-{channel_id}"),
                    "channel_secret",
                    s.as_bytes(),
                    &now,
                )?;
            }
            let has_secret = vault.get(uow.conn(), &r)?.is_some();
            uow.append(AppendRequest::new(
                format!("channel-{channel_id}"),
                actor,
                vec![ChannelSaved {
                    channel_id: channel_id.clone(),
                    kind,
                    name,
                    config,
                    alert_kinds,
                    has_secret,
                }
                .into()],
            ))?;
            Ok(channel_id)
        })
        .await
}

/// Deletes a channel and its secret; queued notifications on it are dropped.
pub async fn delete_channel(state: &AppState, actor: Actor, id: &str) -> Result<(), AppError> {
    let vault = state.vault.clone();
    let id = id.to_string();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            if projections::alerts::channel(uow.conn(), &id)?.is_none() {
                return Err(DomainError::UnknownChannel.into());
            }
            vault.shred_owner(uow.conn(), &format!("channel-{id}"))?;
            uow.append(AppendRequest::new(
                format!("channel-{id}"),
                actor,
                vec![ChannelDeleted {
                    channel_id: id.clone(),
                }
                .into()],
            ))?;
            Ok(())
        })
        .await
}

/// Queues a test notification on a channel.
pub async fn test_channel(state: &AppState, actor: Actor, id: &str) -> Result<String, AppError> {
    let id = id.to_string();
    let nid = new_id();
    let n = nid.clone();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            if projections::alerts::channel(uow.conn(), &id)?.is_none() {
                return Err(DomainError::UnknownChannel.into());
            }
            uow.append(AppendRequest::new(
                format!("notification-{n}"),
                actor,
                vec![NotificationQueued {
                    notification_id: n.clone(),
                    channel_id: id.clone(),
                    alert_id: None,
                    what: "test".into(),
                }
                .into()],
            ))?;
            Ok(())
        })
        .await?;
    Ok(nid)
}

/// Runs until shutdown.
pub async fn run(state: AppState) {
    let mut committed = state.store.subscribe();
    let shutdown = state.shutdown.clone();
    loop {
        if let Err(e) = catch_up(&state).await {
            tracing::warn!(error = %e, "notifier could not read the log");
        }
        let next = match deliver_due(&state).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "notifier delivery failed");
                Some(Duration::from_secs(5))
            }
        };
        let wait = next
            .unwrap_or(Duration::from_secs(30))
            .min(Duration::from_secs(30));
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(wait) => {}
            r = committed.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                    return;
                }
            }
        }
    }
}

/// Queues notifications for every alert event after the checkpoint.
pub async fn catch_up(state: &AppState) -> Result<(), AppError> {
    loop {
        let more = state
            .store
            .write(|uow| -> Result<bool, AppError> {
                let from = checkpoint(uow.conn(), CONSUMER)?;
                let batch = query_events(
                    uow.conn(),
                    &EventQuery {
                        after: Some(from),
                        limit: Some(500),
                        ..Default::default()
                    },
                )?;
                let Some(last) = batch.last().map(|e| e.seq) else {
                    return Ok(false);
                };
                let channels = projections::alerts::channels(uow.conn())?;
                for rec in &batch {
                    let (alert_id, kind, what) = match rec.decode() {
                        Ok(Event::AlertRaised(a)) => (a.alert_id, Some(a.kind), "raised"),
                        Ok(Event::AlertResolved(a)) => {
                            let kind = projections::alerts::get(uow.conn(), &a.alert_id)?
                                .and_then(|x| AlertKind::parse(&x.kind));
                            (a.alert_id, kind, "resolved")
                        }
                        _ => continue,
                    };
                    for c in &channels {
                        let wanted = c.alert_kinds.is_empty()
                            || kind.is_some_and(|k| c.alert_kinds.iter().any(|x| x == k.as_str()));
                        if !wanted {
                            continue;
                        }
                        let nid = new_id();
                        uow.append(
                            AppendRequest::new(
                                format!("notification-{nid}"),
                                Actor::System("notifier".into()),
                                vec![NotificationQueued {
                                    notification_id: nid.clone(),
                                    channel_id: c.id.clone(),
                                    alert_id: Some(alert_id.clone()),
                                    what: what.into(),
                                }
                                .into()],
                            )
                            .command(format!("notify:{}:{}", c.id, rec.seq)),
                        )?;
                    }
                }
                set_checkpoint(uow.conn(), CONSUMER, last)?;
                Ok(batch.len() == 500)
            })
            .await?;
        if !more {
            return Ok(());
        }
    }
}

/// One delivery to make.
struct Delivery {
    note: projections::alerts::Notification,
    channel: projections::alerts::Channel,
    secret: Option<String>,
    alert: Option<projections::alerts::Alert>,
    hostname: Option<String>,
}

/// Sends every due notification; returns how long until the next retry is due.
pub async fn deliver_due(state: &AppState) -> Result<Option<Duration>, AppError> {
    let now = state.clock.now();
    let vault = state.vault.clone();
    let now_s = now.to_string();
    let due = state
        .store
        .read(move |c| -> Result<Vec<Delivery>, AppError> {
            let mut out = Vec::new();
            for note in projections::alerts::due_notifications(c, &now_s)? {
                let Some(channel) = projections::alerts::channel(c, &note.channel_id)? else {
                    continue;
                };
                let secret = vault
                    .get(c, &secret_ref(&channel.id))?
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                let alert = match &note.alert_id {
                    Some(a) => projections::alerts::get(c, a)?,
                    None => None,
                };
                let hostname = match &alert {
                    Some(a) => projections::hosts::get(c, &a.host_id)?.map(|h| h.hostname),
                    None => None,
                };
                out.push(Delivery {
                    note,
                    channel,
                    secret,
                    alert,
                    hostname,
                });
            }
            Ok(out)
        })
        .await?;
    for d in due {
        if state.shutdown.is_triggered() {
            break;
        }
        let result = send(&d).await;
        let attempt = d.note.attempts + 1;
        let (ok, error, next) = match result {
            Ok(()) => (true, None, None),
            Err(e) => {
                let next = alerts::backoff_after(attempt)
                    .map(|s| state.clock.now().plus_seconds(s).to_string());
                (false, Some(e), next)
            }
        };
        if let Some(e) = &error {
            tracing::warn!(channel = %d.channel.name, attempt, error = %e, "notification not delivered");
        }
        let ev = NotificationAttempted {
            notification_id: d.note.id.clone(),
            channel_id: d.channel.id.clone(),
            attempt,
            ok,
            error,
            next_attempt_at: next,
        };
        let nid = d.note.id.clone();
        state
            .store
            .write(move |uow| -> Result<(), AppError> {
                uow.append(
                    AppendRequest::new(
                        format!("notification-{nid}"),
                        Actor::System("notifier".into()),
                        vec![ev.into()],
                    )
                    .command(format!("notify-attempt:{nid}:{attempt}")),
                )?;
                Ok(())
            })
            .await?;
    }
    let next = state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::alerts::next_retry_at(c)?) })
        .await?;
    Ok(next.and_then(|t| t.parse::<Timestamp>().ok()).map(|t| {
        let secs = (t.unix_micros() - state.clock.now().unix_micros()).max(0) / 1_000_000;
        Duration::from_secs(secs as u64 + 1)
    }))
}

/// The JSON every webhook receives.
fn payload(d: &Delivery) -> Value {
    json!({
        "notification_id": d.note.id,
        "event": match d.note.what.as_str() { "test" => "test".to_string(), w => format!("alert.{w}") },
        "channel": d.channel.name,
        "alert": d.alert.as_ref().map(|a| json!({
            "id": a.id, "host_id": a.host_id, "hostname": d.hostname, "kind": a.kind,
            "severity": a.severity, "state": a.state, "message": a.message,
            "raised_at": a.raised_at, "resolved_at": a.resolved_at,
        })),
    })
}

/// A one-line subject.
fn subject(d: &Delivery) -> String {
    match &d.alert {
        Some(a) => format!(
            "[restic-manager] {} {} on {}",
            if d.note.what == "resolved" {
                "resolved:"
            } else {
                a.severity.as_str()
            },
            a.kind,
            d.hostname.as_deref().unwrap_or(&a.host_id)
        ),
        None => "[restic-manager] test notification".into(),
    }
}

fn body_text(d: &Delivery) -> String {
    match &d.alert {
        Some(a) => format!(
            "{}\n\nhost: {}\nkind: {}\nseverity: {}\nraised: {}{}\n",
            a.message,
            d.hostname.as_deref().unwrap_or(&a.host_id),
            a.kind,
            a.severity,
            a.raised_at,
            a.resolved_at
                .as_ref()
                .map(|r| format!("\nresolved: {r}"))
                .unwrap_or_default()
        ),
        None => "This is a test notification from restic-manager: the channel works.\n".into(),
    }
}

/// The signature of a body: `sha256=<hex>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

async fn send(d: &Delivery) -> Result<(), String> {
    match d.channel.kind.as_str() {
        "webhook" => {
            let url = d.channel.config["url"].as_str().unwrap_or_default();
            let body = serde_json::to_vec(&payload(d)).map_err(|e| e.to_string())?;
            let mut req = http()?
                .post(url)
                .header("content-type", "application/json")
                .header("x-rm-notification-id", &d.note.id)
                .header("x-rm-event", d.note.what.as_str());
            if let Some(s) = &d.secret {
                req = req.header(SIGNATURE_HEADER, sign(s, &body));
            }
            let r = req.body(body).send().await.map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("the webhook answered {}", r.status()))
            }
        }
        "ntfy" => {
            let url = d.channel.config["url"].as_str().unwrap_or_default();
            let critical = d.alert.as_ref().is_some_and(|a| a.severity == "critical")
                && d.note.what == "raised";
            let mut req = http()?
                .post(url)
                .header("Title", subject(d))
                .header("Priority", if critical { "5" } else { "3" })
                .header(
                    "Tags",
                    if d.note.what == "resolved" {
                        "white_check_mark"
                    } else {
                        "warning"
                    },
                );
            if let Some(t) = &d.secret {
                req = req.bearer_auth(t);
            }
            let r = req
                .body(body_text(d))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("ntfy answered {}", r.status()))
            }
        }
        "email" => send_email(d).await,
        k => Err(format!("unknown channel kind {k}")),
    }
}

async fn send_email(d: &Delivery) -> Result<(), String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let c: EmailConfig =
        serde_json::from_value(d.channel.config.clone()).map_err(|e| e.to_string())?;
    let mut msg = Message::builder()
        .from(c.from.parse().map_err(|e| format!("from: {e}"))?)
        .subject(subject(d));
    for to in &c.to {
        msg = msg.to(to.parse().map_err(|e| format!("to: {e}"))?);
    }
    let msg = msg.body(body_text(d)).map_err(|e| e.to_string())?;
    let mut b = match c.security.as_str() {
        "tls" => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&c.smtp_host).map_err(|e| e.to_string())?
        }
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.smtp_host)
            .map_err(|e| e.to_string())?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.smtp_host),
    }
    .port(c.smtp_port)
    .timeout(Some(Duration::from_secs(15)));
    if let (Some(u), Some(p)) = (&c.username, &d.secret) {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    b.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn channel_settings_are_checked_and_secrets_split_off() {
        let input = |kind: &str, config: Value| ChannelInput {
            kind: kind.into(),
            name: "ops".into(),
            config,
            alert_kinds: vec![],
        };
        let (k, public, secret, _) = validate(&input(
            "webhook",
            json!({"url": "https://hooks.example/x", "secret": "s3"}),
        ))
        .unwrap();
        assert_eq!(k, ChannelKind::Webhook);
        assert_eq!(public, json!({"url": "https://hooks.example/x"}));
        assert_eq!(secret.as_deref(), Some("s3"));
        assert!(validate(&input("webhook", json!({"url": "ftp://x"}))).is_err());
        assert!(validate(&input("webhook", json!({"url": "https://x", "extra": 1}))).is_err());
        assert!(validate(&input("pager", json!({}))).is_err());
        let (_, public, secret, _) = validate(&input(
            "email",
            json!({"smtp_host": "mail.example", "from": "rm@example.org", "to": ["ops@example.org"], "password": "pw"}),
        ))
        .unwrap();
        assert_eq!(public["smtp_port"], 587);
        assert_eq!(secret.as_deref(), Some("pw"));
        assert!(validate(&input(
            "email",
            json!({"smtp_host": "m", "from": "not an address", "to": ["a@b.c"]})
        ))
        .is_err());
        let mut bad_kind = input("ntfy", json!({"url": "https://ntfy.sh/t"}));
        bad_kind.alert_kinds = vec!["everything".into()];
        assert!(validate(&bad_kind).is_err());
    }
}
