//! The README's install line, `cargo install --locked --path
//! receiver/native`, gives an `edgepush-receiver` that starts and serves.
//! (Installed unoptimised into a temporary root, with its own target
//! directory beside this build's, so that a rerun only checks it.)

use std::process::{Command, Stdio};
use std::time::Duration;

use edgepush_tests::{free_port, http_get, repo_root, wait_for};

#[test]
fn cargo_install_gives_a_working_receiver() {
    let root = tempfile::tempdir().expect("temp dir");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("cargo-install");
    let status = Command::new(env!("CARGO"))
        .args(["install", "--locked", "--debug", "--quiet", "--path"])
        .arg(repo_root().join("receiver/native"))
        .arg("--root")
        .arg(root.path())
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo install");
    assert!(status.success(), "cargo install failed");
    let binary = root.path().join("bin/edgepush-receiver");

    let version = Command::new(&binary)
        .arg("--version")
        .output()
        .expect("run edgepush-receiver --version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.starts_with("edgepush-receiver ") && version.contains(env!("CARGO_PKG_VERSION")),
        "{version}"
    );

    let port = free_port();
    let mut child = Command::new(&binary)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("EDGEPUSH_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the installed receiver");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let answered = std::panic::catch_unwind(|| {
        wait_for("the installed receiver", Duration::from_secs(30), || {
            http_get(&url) == Ok(200)
        });
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        answered.is_ok(),
        "the installed receiver never answered {url}"
    );
}
