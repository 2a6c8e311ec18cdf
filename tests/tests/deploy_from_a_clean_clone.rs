//! `wrangler deploy` from a clean clone with only what deploying needs on
//! `PATH`: Rust (rustup, cargo, rustc) and Node.js (node, npm, npx), none of
//! the test tools. wrangler runs `wrangler.toml`'s build command
//! (`.ci/build-worker`), which installs its own pinned worker-build,
//! wasm-bindgen CLI, wasm-opt, esbuild and nightly when they are missing
//! (`.ci/wasm-tools`). The test gives the build a tools directory of its
//! own: the npm tools (binaryen, esbuild) are installed into it for real;
//! the cargo tools, which take minutes to compile, are linked from the
//! per-user directory where `.ci/setup` installed them with that same code
//! (on a machine without them, the build installs them here too).
//! `--dry-run --outdir` writes exactly what would be uploaded; that bundle
//! is then served in workerd and forwards a push to InfluxDB.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgepush_tests::bad_input::{V1, assert_only_kept_arrived, batch};
use edgepush_tests::{Influx, Workerd, clean_copy, post, repo_root, target_dir};
use serde_json::json;

/// A `bin/` folder holding only `names`, linked to where they are found on
/// this `PATH`.
fn only_these_on_path(dir: &Path, names: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin folder");
    let path = std::env::var_os("PATH").expect("PATH");
    for name in names {
        let found = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{name} is not on PATH"));
        std::os::unix::fs::symlink(&found, bin.join(name)).expect("link");
    }
    bin
}

/// The per-user tools directory of `.ci/wasm-tools`.
fn user_tools() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGEPUSH_TOOLS") {
        return dir.into();
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
        .join("edgepush/tools")
}

#[test]
fn wrangler_deploy_builds_from_a_clean_clone_with_only_rust_and_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clone = dir.path().join("edgepush");
    clean_copy(&clone);
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools folder");
    for entry in std::fs::read_dir(user_tools())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if (name.starts_with("worker-build-") || name.starts_with("wasm-bindgen-cli-"))
            && !name.contains(".partial")
        {
            std::os::unix::fs::symlink(entry.path(), tools.join(&name)).expect("link a tool");
        }
    }
    let bin = only_these_on_path(
        dir.path(),
        &["cargo", "rustc", "rustup", "node", "npm", "npx"],
    );
    // The system's own folders give bash and coreutils; none of them holds
    // a wasm or Worker tool (checked, so the test cannot pass by accident).
    let system = ["/usr/bin", "/bin"];
    for tool in [
        "worker-build",
        "wasm-bindgen",
        "wasm-opt",
        "esbuild",
        "wrangler",
    ] {
        for d in system {
            assert!(
                !Path::new(d).join(tool).exists(),
                "{d}/{tool} exists: this test would not show the build installs it"
            );
        }
    }
    let path =
        std::env::join_paths(std::iter::once(bin).chain(system.map(PathBuf::from))).expect("PATH");
    let out = dir.path().join("dist");
    let mut command = Command::new("node");
    command
        .arg(repo_root().join("tests/workerd/node_modules/wrangler/bin/wrangler.js"))
        .args(["deploy", "--dry-run", "--outdir"])
        .arg(&out)
        .current_dir(&clone)
        .env_clear()
        .env("PATH", &path)
        .env("HOME", std::env::var_os("HOME").expect("HOME"))
        // Compiled dependencies are reused from the tests' own builds (the
        // clone's own crates build anew: their paths differ).
        .env("CARGO_TARGET_DIR", target_dir())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("CI", "true");
    for inherited in [
        "XDG_CACHE_HOME",
        "EDGEPUSH_TOOLS",
        "RUSTUP_HOME",
        "CARGO_HOME",
        "TMPDIR",
    ] {
        if let Some(value) = std::env::var_os(inherited) {
            command.env(inherited, value);
        }
    }
    let output = command.output().expect("run wrangler deploy --dry-run");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "wrangler deploy --dry-run failed:\n{log}"
    );
    // The deploy build is the size build, on the pinned nightly.
    let toolchain =
        std::fs::read_to_string(clone.join("receiver/build/toolchain.txt")).expect("toolchain.txt");
    assert!(
        toolchain.starts_with("nightly-"),
        "built with {toolchain}:\n{log}"
    );

    // What would be uploaded runs, and forwards.
    let script = out.join("index.js");
    assert!(
        script.is_file(),
        "no {} after the dry run:\n{log}",
        script.display()
    );
    let influx = Influx::start(dir.path());
    let worker = Workerd::start_with(
        dir.path(),
        &json!({ "EDGEPUSH_INFLUXDB_URL": influx.url, "EDGEPUSH_INFLUXDB_DATABASE": influx.database }),
        &json!({ "scriptPath": script, "modulesRoot": out }),
    );
    let body = batch("deploy", r#"{"n":"kept","k":"g"}"#, r#"{"s":0,"x":5}"#);
    let (status, answer) = post(
        &format!("{}/v1/metrics", worker.url),
        &[("content-type", V1)],
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}\n{}", worker.log_text());
    assert_only_kept_arrived(&influx);
}

/// Where the pinned nightly cannot be had (here: no rustup on `PATH`), the
/// build falls back to stable and says so; asked for stable, it says
/// nothing. (The size test budgets each toolchain's build apart.)
#[test]
fn without_rustup_the_wasm_build_falls_back_to_stable_and_says_so() {
    // A PATH with what the script needs to decide, and no rustup.
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = only_these_on_path(dir.path(), &["awk", "dirname", "grep"]);
    let choose = |extra: &[(&str, &str)]| {
        let out = Command::new("/bin/bash")
            .args([
                "-c",
                ". .ci/wasm-tools && edgepush_wasm_toolchain && echo \"$EDGEPUSH_WASM_TOOLCHAIN\"",
            ])
            .current_dir(repo_root())
            .env("PATH", &bin)
            .env_remove("EDGEPUSH_WASM_TOOLCHAIN")
            .envs(extra.iter().copied())
            .output()
            .expect("run bash");
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (toolchain, said) = choose(&[]);
    assert_eq!(toolchain, "stable");
    assert!(
        said.contains("cannot be installed; building the wasm on stable"),
        "{said}"
    );
    let (toolchain, said) = choose(&[("EDGEPUSH_WASM_TOOLCHAIN", "stable")]);
    assert_eq!((toolchain.as_str(), said.as_str()), ("stable", ""));
}
