//! The extension's layer as docs/lambda-extension.md builds it: `cargo
//! lambda build --extension --release --output-format zip` for x86_64 and
//! for arm64. Each zip holds `extensions/edgepush-extension`, executable,
//! for its architecture; the x86_64 one, unpacked, registers under the
//! project's Lambda API beside a Python function and pushes what the
//! function sent.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edgepush_tests::lambda_api::LambdaApi;
use edgepush_tests::{free_port, repo_root, run_ok, target_dir};
use serde_json::json;

/// Builds the layer zip for `arch` (`x86_64` or `arm64`) into `out`; its
/// path.
fn build(arch: &str, out: &Path) -> std::path::PathBuf {
    let venv = repo_root().join(".venv/bin");
    let path = format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(venv.join("cargo-lambda"));
    command
        .args(["lambda", "build", "--extension", "--release", "--locked"])
        .args(["-p", "edgepush-extension", "--output-format", "zip"])
        .args((arch == "arm64").then_some("--arm64"))
        .arg("--lambda-dir")
        .arg(out)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(repo_root());
    run_ok(&mut command, "cargo lambda build --extension");
    out.join("extensions/edgepush-extension.zip")
}

/// The one file of the layer: its path in the zip, mode and bytes.
fn unpack(zip: &Path) -> (String, u32, Vec<u8>) {
    let listing = run_ok(Command::new("unzip").arg("-Z1").arg(zip), "unzip -Z1");
    let names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(str::to_string)
        .collect();
    assert_eq!(
        names,
        ["extensions/edgepush-extension"],
        "the layer's files"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    run_ok(
        Command::new("unzip")
            .arg("-q")
            .arg(zip)
            .arg("-d")
            .arg(dir.path()),
        "unzip",
    );
    let file = dir.path().join(&names[0]);
    let mode = std::fs::metadata(&file)
        .expect("unpacked")
        .permissions()
        .mode();
    let mut bytes = Vec::new();
    std::fs::File::open(&file)
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("read");
    (names[0].clone(), mode, bytes)
}

/// The ELF machine of `binary` (62 x86-64, 183 AArch64).
fn elf_machine(binary: &[u8]) -> u16 {
    assert_eq!(&binary[..4], b"\x7fELF", "an ELF executable");
    u16::from_le_bytes([binary[18], binary[19]])
}

#[test]
fn the_layer_zips_hold_the_extension_for_each_architecture_and_it_runs() {
    let out = tempfile::tempdir().expect("temp dir");
    let arm = build("arm64", &out.path().join("arm64"));
    let (_, mode, binary) = unpack(&arm);
    assert_eq!(elf_machine(&binary), 183, "arm64");
    assert_ne!(mode & 0o111, 0, "executable");
    eprintln!(
        "arm64 layer: {} bytes zipped, {} unpacked",
        std::fs::metadata(&arm).expect("zip").len(),
        binary.len()
    );

    let x86 = build("x86_64", &out.path().join("x86_64"));
    let (_, mode, binary) = unpack(&x86);
    assert_eq!(elf_machine(&binary), 62, "x86_64");
    assert_ne!(mode & 0o111, 0, "executable");
    eprintln!(
        "x86_64 layer: {} bytes zipped, {} unpacked",
        std::fs::metadata(&x86).expect("zip").len(),
        binary.len()
    );

    // The packaged binary itself, under the API, beside a Python function.
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = dir.path().join("edgepush-extension");
    std::fs::write(&exe, &binary).expect("write");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let api = LambdaApi::start();
    let statsd = free_port().to_string();
    let otlp = free_port().to_string();
    let url = api.receiver_url();
    let env = [
        ("EDGEPUSH_URL", url.as_str()),
        ("EDGEPUSH_STATSD_PORT", statsd.as_str()),
        ("EDGEPUSH_OTLP_PORT", otlp.as_str()),
    ];
    let extension = api.start_extension(dir.path(), &exe, &env);
    let mut python = Command::new(repo_root().join(".venv/bin/python"));
    python.arg(repo_root().join("tests/clients/statsd_function.py"));
    let function = api.spawn("python function", dir.path(), python, &env);
    let inv = api.invoke(
        json!({"send": [["statsd", "incr", "layer.orders", 3]]}),
        Duration::from_secs(10),
    );
    api.frozen(&inv.request_id, Duration::from_secs(10))
        .expect("frozen");
    // The default policy (adaptive) pushes after each of the first
    // invocations.
    let totals = api.captured_totals();
    assert_eq!(
        totals.get("layer.orders").map(|t| t.0),
        Some(3.0),
        "{totals:?}\n{}",
        extension.log_text()
    );
    drop(function);
}
