//! The `scanpay` binary as an operator meets it: configuration errors, `migrate`, and a
//! served process that stops cleanly on SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn scanpay() -> Command {
    common::scanpay_command()
}

/// Sends SIGTERM and waits (up to 20 s) for the process to exit.
fn stop_with_sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` (a `scanpay serve` that should refuse to start) to its exit; one still running
/// after 30 s is killed and fails the test, saying it served instead of refusing.
fn refused_start(mut cmd: Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "scanpay serve was still running after 30 s instead of refusing to start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Starts `cmd` (a `scanpay serve`), waits for the line that names its URL and asks
/// `/healthz`; the process, its URL and the rest of its standard output. A process that
/// exits first fails the test with what it printed.
fn serve_until_healthy(
    mut cmd: Command,
) -> (
    std::process::Child,
    String,
    BufReader<std::process::ChildStdout>,
) {
    let mut child = cmd
        .env("SCANPAY_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
        let status = child.wait().expect("wait");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
            .expect("stderr");
        panic!("scanpay serve did not start ({status}): {line}{err}");
    };
    let url = url.to_string();
    let (status, _) = get_text(&format!("{url}/healthz"));
    assert_eq!(status, 200);
    (child, url, stdout)
}

/// A GET from a synchronous test, with the suite's time limit; the status and the body.
fn get_text(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let res = common::test_client().get(url).send().await?;
        let status = res.status().as_u16();
        Ok::<_, reqwest::Error>((status, res.text().await?))
    })
    .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// What `make run` does on a fresh clone: no data directory yet. It crashed with `cannot
/// lock data/scanpay.db.node-lock: No such file or directory`.
#[test]
fn serve_starts_in_an_empty_folder_without_a_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = scanpay();
    cmd.current_dir(dir.path());
    let (mut child, _, _) = serve_until_healthy(cmd);
    assert!(
        dir.path().join("data").join("scanpay.db").is_file(),
        "the default database was created under ./data"
    );
    assert!(stop_with_sigterm(&mut child).success());
}

/// The URL anyone writes, without `?mode=rwc`, stopped with `unable to open database file`.
#[test]
fn a_plain_sqlite_url_creates_its_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("var").join("lib").join("scanpay.db");
    let mut cmd = scanpay();
    cmd.env("SCANPAY_DATA_DIR", dir.path()).env(
        "SCANPAY_DATABASE_URL",
        format!("sqlite://{}", file.display()),
    );
    let (mut child, _, _) = serve_until_healthy(cmd);
    assert!(file.is_file(), "{} was created", file.display());
    assert!(stop_with_sigterm(&mut child).success());
}

/// A live start with the demo beside real credentials exits non-zero, naming the keys.
#[test]
fn a_live_start_with_the_demo_beside_real_credentials_exits_naming_the_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = scanpay();
    cmd.env("SCANPAY_DATA_DIR", dir.path())
        .env("SCANPAY_LISTEN", "127.0.0.1:0")
        .env("SCANPAY_ALIPAY_APP_ID", "2021000000000001")
        .env("SCANPAY_ALIPAY_SELLER_ID", "2088000000000001")
        .env(
            "SCANPAY_ALIPAY_PRIVATE_KEY_FILE",
            common::vector_path("alipay/app-private-key-pkcs1.pem"),
        )
        .env(
            "SCANPAY_ALIPAY_PUBLIC_KEY_FILE",
            common::vector_path("alipay/response-sign-public-key.pem"),
        )
        .env("SCANPAY_DEMO", "on")
        .arg("serve");
    let out = refused_start(cmd);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for named in [
        "refusing to start",
        "SCANPAY_DEMO",
        "SCANPAY_ALIPAY_APP_ID",
        "SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE",
    ] {
        assert!(err.contains(named), "{named} not in: {err}");
    }
}

#[test]
fn a_bad_setting_stops_startup_naming_the_key() {
    let mut cmd = scanpay();
    cmd.env("SCANPAY_LISTEN", "nowhere").arg("serve");
    let out = refused_start(cmd);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SCANPAY_LISTEN"), "{err}");
    assert!(err.contains("socket address"), "{err}");
}

#[test]
fn an_unreadable_config_file_stops_startup() {
    let out = scanpay()
        .args(["--config", "/nonexistent/scanpay.toml", "migrate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/scanpay.toml"));
}

#[test]
fn migrate_creates_the_embedded_database_under_the_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("nested").join("data");
    let out = scanpay()
        .env("SCANPAY_DATA_DIR", &data)
        .arg("migrate")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let newest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .expect("migrations")
        .count();
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("SQLite schema is at migration {newest}")));
    assert!(
        data.join("scanpay.db").is_file(),
        "the database file exists"
    );
    let again = scanpay()
        .env("SCANPAY_DATA_DIR", &data)
        .arg("migrate")
        .output()
        .expect("run");
    assert!(again.status.success(), "migrating twice is fine");
}

#[test]
fn serve_prints_the_url_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = scanpay();
    cmd.env("SCANPAY_DATA_DIR", dir.path())
        .env("SCANPAY_LOG", "info");
    let (mut child, _, mut stdout) = serve_until_healthy(cmd);
    let exit = stop_with_sigterm(&mut child);
    assert!(exit.success(), "exit status {exit:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut logs)
        .expect("logs");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("stdout");
    assert!(
        format!("{logs}{rest}").contains("scanpay stopped cleanly"),
        "{logs}{rest}"
    );
}

#[test]
fn sandbox_command_serves_the_gateways_and_prints_the_settings_for_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = scanpay()
        .env("SCANPAY_DATA_DIR", dir.path())
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    for _ in 0..16 {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("line");
        lines.push(line.trim().to_string());
    }
    let url = lines[0]
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("URL")
        .to_string();
    let setting = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {lines:?}"))
            .to_string()
    };
    assert_eq!(setting("SCANPAY_SANDBOX"), "off");
    assert!(setting("SCANPAY_ALIPAY_GATEWAY").ends_with("/sandbox/alipay/gateway.do"));
    assert!(
        std::path::Path::new(&setting("SCANPAY_WECHAT_PRIVATE_KEY_FILE")).is_file(),
        "the key files exist"
    );
    assert!(setting("SCANPAY_WECHAT_PUBLIC_KEY_ID").starts_with("PUB_KEY_ID_"));
    let (status, page) = get_text(&url);
    assert_eq!(status, 200);
    assert!(page.contains("ScanPay sandbox gateways"));
    let exit = stop_with_sigterm(&mut child);
    assert!(exit.success(), "{exit:?}");
}

/// `scanpay notify verify` on notifications signed as the providers sign them (with the
/// sandbox gateways' generated keys), then on altered copies.
#[test]
fn notify_verify_tells_a_genuine_notification_from_an_altered_one() {
    use server::sandbox::deliver::{sign_alipay_notification, sign_wechat_notification};
    use server::sandbox::keys::{apiv3_key_file, pair, SandboxKeys};
    let dir = tempfile::tempdir().expect("dir");
    let keys = SandboxKeys::load_or_create(dir.path()).expect("keys");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p.display().to_string()
    };
    let verify = |args: &[&str]| {
        let out = scanpay()
            .args(["notify", "verify"])
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    // Alipay.
    let fields = [
        ("app_id", "9021000000000001"),
        ("notify_id", "n1"),
        ("out_trade_no", "20261127ABCDEF"),
        ("seller_id", "2088000000000001"),
        ("sign_type", "RSA2"),
        ("total_amount", "12.34"),
        ("trade_no", "2026112722001"),
        ("trade_status", "TRADE_SUCCESS"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let body = sign_alipay_notification(&keys.alipay_gateway, fields, false).body;
    let public = pair(dir.path(), "alipay-gateway")
        .public
        .display()
        .to_string();
    let good = write("alipay.txt", &body);
    let (code, out) = verify(&[
        "--provider",
        "alipay",
        "--body",
        &good,
        "--public-key",
        &public,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("VERIFIED") && out.contains("20261127ABCDEF"),
        "{out}"
    );
    assert!(out.contains("12.34") && out.contains("1234 fen"), "{out}");
    let altered = String::from_utf8(body)
        .expect("utf8")
        .replace("12.34", "0.01");
    let bad = write("alipay-altered.txt", altered.as_bytes());
    let (code, out) = verify(&[
        "--provider",
        "alipay",
        "--body",
        &bad,
        "--public-key",
        &public,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("NOT VERIFIED") && out.contains("bad_signature"),
        "{out}"
    );

    // WeChat Pay: headers as `curl -v` shows them.
    let signed_at = 1_800_000_000;
    let n = sign_wechat_notification(
        &keys.wechat_gateway,
        &keys.wechat_apiv3_key,
        "EV-1",
        &serde_json::json!({
            "appid": "wx8888888888888888", "mchid": "1900000001", "out_trade_no": "20261127WXPAY1",
            "transaction_id": "4200001", "trade_state": "SUCCESS",
            "amount": { "total": 500, "currency": "CNY" },
        }),
        signed_at,
        "NONCE1",
        false,
    );
    let headers: String = n
        .headers
        .iter()
        .map(|(k, v)| format!("< {k}: {v}\n"))
        .collect();
    let body = write("wechat.json", &n.body);
    let heads = write("wechat-headers.txt", headers.as_bytes());
    let public = pair(dir.path(), "wechat-gateway")
        .public
        .display()
        .to_string();
    let apiv3 = apiv3_key_file(dir.path()).display().to_string();
    let at = |t: i64| t.to_string();
    let base = |at_time: &str| {
        verify(&[
            "--provider",
            "wechat",
            "--body",
            &body,
            "--headers",
            &heads,
            "--public-key",
            &public,
            "--apiv3-key-file",
            &apiv3,
            "--at",
            at_time,
        ])
    };
    let (code, out) = base(&at(signed_at + 10));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("20261127WXPAY1") && out.contains("SUCCESS (paid)"),
        "{out}"
    );
    // A day later: the window fails, and the tool says the signature itself is good.
    let (code, out) = base(&at(signed_at + 86_400));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("stale_timestamp"), "{out}");
    assert!(out.contains("the signature itself verifies"), "{out}");
    // A missing APIv3 key is unusable input, said plainly.
    let out = scanpay()
        .args([
            "notify",
            "verify",
            "--provider",
            "wechat",
            "--body",
            &body,
            "--headers",
            &heads,
        ])
        .args(["--public-key", &public])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--apiv3-key-file"));
}

#[test]
fn merchant_create_prints_its_key_and_a_one_time_sign_in_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        scanpay()
            .env("SCANPAY_DATA_DIR", dir.path())
            .env("SCANPAY_PUBLIC_URL", "https://pay.example")
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&[
        "merchant",
        "create",
        "--name",
        "Tea House",
        "--email",
        "Ann@Tea.example",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(
        made["merchant_id"]
            .as_str()
            .is_some_and(|m| m.starts_with("mer_")),
        "{made}"
    );
    assert!(
        made["api_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("sk_") && k.len() == 35),
        "{made}"
    );
    assert!(
        made["login_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://pay.example/auth/link/")),
        "{made}"
    );
    assert_eq!(made["email"], "ann@tea.example");
    // The same email again is refused, naming it; nothing else is created.
    let again = run(&[
        "merchant",
        "create",
        "--name",
        "Copy",
        "--email",
        "ann@tea.example",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("ann@tea.example exists already"));
    let bad = run(&[
        "merchant",
        "create",
        "--name",
        "X",
        "--email",
        "not-an-email",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("email address is not valid"));
    // A new link for the user; an unknown email is an error.
    let link = run(&["merchant", "login-link", "--email", "ann@tea.example"]);
    assert!(String::from_utf8_lossy(&link.stdout).starts_with("https://pay.example/auth/link/"));
    let none = run(&["merchant", "login-link", "--email", "bob@tea.example"]);
    assert!(!none.status.success());
}

/// `make dist`'s archive (packed here from the debug build): unpacked into an empty folder,
/// started from another empty folder with no site settings, it serves its pages and their
/// browser code from the `site/` beside it, and `--version` names the commit.
#[test]
fn a_release_archive_unpacks_into_an_empty_folder_and_serves() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let packed = Command::new(repo.join("scripts/dist.sh"))
        .arg("--debug")
        .current_dir(&repo)
        .output()
        .expect("scripts/dist.sh");
    assert!(
        packed.status.success(),
        "scripts/dist.sh --debug: {}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let archive = repo.join(String::from_utf8_lossy(&packed.stdout).trim());
    let unpacked = tempfile::tempdir().expect("tempdir");
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(unpacked.path())
        .status()
        .expect("tar");
    assert!(untar.success());
    let _ = std::fs::remove_file(&archive);
    let folder = std::fs::read_dir(unpacked.path())
        .expect("unpacked")
        .next()
        .expect("one folder")
        .expect("entry")
        .path();
    for file in [
        "scanpay",
        "site/pkg/scanpay.wasm",
        "site/pkg/scanpay.js",
        "site/pkg/scanpay.css",
        "scanpay.toml.sample",
        "scanpay.service",
        "INSTALL.md",
    ] {
        assert!(folder.join(file).is_file(), "the archive holds {file}");
    }
    let unit = std::fs::read_to_string(folder.join("scanpay.service")).expect("unit");
    for hardening in [
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.contains(hardening), "the unit sets {hardening}");
    }
    // --version names the commit this checkout is at.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(&repo)
        .output()
        .expect("git");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let version = Command::new(folder.join("scanpay"))
        .arg("--version")
        .output()
        .expect("--version");
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with("scanpay ") && version.contains(&format!("(commit {head})")),
        "{version}"
    );
    // Started from an empty folder with none of the build's site settings.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(folder.join("scanpay"));
    cmd.current_dir(elsewhere.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("SCANPAY_") || k.starts_with("LEPTOS_") {
            cmd.env_remove(k);
        }
    }
    let (mut child, url, _) = serve_until_healthy(cmd);
    let (status, page) = get_text(&format!("{url}/"));
    assert_eq!(status, 200);
    assert!(
        page.contains("/pkg/scanpay.js"),
        "the page loads its bundle"
    );
    let (status, _) = get_text(&format!("{url}/pkg/scanpay.js"));
    assert_eq!(
        status, 200,
        "the bundle is served from the archive's site folder"
    );
    assert!(stop_with_sigterm(&mut child).success());
}

/// `scanpay config`: every setting with its value and source; a secret only as "set".
#[test]
fn config_prints_the_effective_settings_and_hides_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("scanpay.toml"),
        "listen = \"127.0.0.1:4000\"\nsandbox_time_scale = 0.01\n",
    )
    .expect("file");
    let secret = "correct-horse-battery-staple-42";
    let out = scanpay()
        .current_dir(dir.path())
        .env("SCANPAY_CLUSTER_SECRET", secret)
        .arg("config")
        .output()
        .expect("scanpay config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in:\n{text}"))
            .to_string()
    };
    assert!(
        line("SCANPAY_LISTEN").contains("127.0.0.1:4000  (scanpay.toml)"),
        "{text}"
    );
    assert!(
        line("SCANPAY_SANDBOX_TIME_SCALE").contains("0.01"),
        "{text}"
    );
    assert!(
        line("SCANPAY_LOG").contains("info  (the default)"),
        "{text}"
    );
    assert!(
        line("SCANPAY_CLUSTER_SECRET")
            .contains("(set, secret)  (environment variable SCANPAY_CLUSTER_SECRET)"),
        "{text}"
    );
    assert!(!text.contains(secret), "the secret was printed");
    // A bad value is the same clear error as at start-up.
    let bad = scanpay()
        .current_dir(dir.path())
        .env("SCANPAY_LISTEN", "nowhere")
        .arg("config")
        .output()
        .expect("scanpay config");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("SCANPAY_LISTEN"));
}
