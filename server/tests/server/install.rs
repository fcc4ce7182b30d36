//! `/install/agent.sh` run for real against a temporary root (never the machine itself).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::helpers::{agent_bin, client, TestApp};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[tokio::test]
async fn the_install_script_installs_enrols_and_only_lists_existing_restic_schedules() {
    let bins = agent_bin().parent().unwrap().to_path_buf();
    let app = TestApp::spawn_with(move |c| c.agent_binaries_dir = bins).await;
    app.bootstrap().await;
    let minted = app.mint("installed-1", "Install-Password-1").await;
    let token = minted["token"].as_str().unwrap().to_string();

    let anon = client();
    let r = anon
        .get(app.url("/install/agent.sh?token=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = anon
        .get(app.url("/agent/binary/linux/sparc64"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("linux/sparc64"));
    let r = anon
        .get(app.url("/agent/binary/linux/x%20y"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let script = anon
        .get(app.url(&format!("/install/agent.sh?token={token}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains(&format!("SERVER='{}'", app.base())));
    assert!(script.contains(&format!("TOKEN='{token}'")));

    // A temporary root with restic schedules already in place.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(
        r,
        "etc/cron.d/restic-backup",
        "0 3 * * * root restic backup /home\n",
    );
    write(r, "etc/cron.d/unrelated", "0 1 * * * root logrotate\n");
    write(r, "etc/crontab", "# m h dom mon dow user command\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n30 2 * * * root /usr/bin/restic forget --keep-daily 7\n");
    write(
        r,
        "var/spool/cron/crontabs/alice",
        "15 4 * * * restic -r /srv/r backup ~\n",
    );
    write(
        r,
        "etc/systemd/system/nightly.timer",
        "[Timer]\nOnCalendar=daily\n",
    );
    write(
        r,
        "etc/systemd/system/nightly.service",
        "[Service]\nExecStart=/usr/bin/restic backup /srv\n",
    );
    write(
        r,
        "etc/systemd/system/other.timer",
        "[Timer]\nOnCalendar=weekly\n",
    );
    let script_path = r.join("agent.sh");
    std::fs::write(&script_path, &script).unwrap();

    let run = |root: std::path::PathBuf, script: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh")
                .arg(&script)
                .env("RM_INSTALL_PREFIX", &root)
                .env("RM_INSTALL_NO_SYSTEMCTL", "1")
                .output()
                .unwrap()
        })
    };
    let out = run(r.to_path_buf(), script_path.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let bin = r.join("usr/local/bin/restic-manager-agent");
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o111,
        0o111
    );
    let unit =
        std::fs::read_to_string(r.join("etc/systemd/system/restic-manager-agent.service")).unwrap();
    for line in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/restic-manager",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "MemoryDenyWriteExecute=yes",
        "ExecStart=/usr/local/bin/restic-manager-agent run",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "unit lacks {line}:\n{unit}"
        );
    }
    let config = r.join("etc/restic-manager/agent.toml");
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (_, hosts) = app.get_json("/api/hosts").await;
    assert_eq!(hosts["hosts"][0]["hostname"], "installed-1");

    // Listed, with exact commands; nothing disabled.
    for expected in [
        "cron: /etc/cron.d/restic-backup",
        "disable with: sudo mv '/etc/cron.d/restic-backup' '/etc/cron.d/restic-backup.disabled'",
        "cron: /etc/crontab line 3",
        "disable with: sudo sed -i '3s/^/# /' /etc/crontab",
        "crontab of alice",
        "sudo crontab -u alice -l | sed '/restic/s/^/# /' | sudo crontab -u alice -",
        "systemd timer: nightly.timer",
        "disable with: sudo systemctl disable --now nightly.timer",
        "did not disable any of these",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("unrelated") && !stdout.contains("other.timer"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("etc/cron.d/restic-backup")).unwrap(),
        "0 3 * * * root restic backup /home\n"
    );
    assert!(r.join("etc/systemd/system/nightly.timer").exists());

    // Running it again keeps the enrolment (the token is spent anyway).
    let again = run(r.to_path_buf(), script_path).await.unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("Already enrolled"));
    app.stop().await;
}
