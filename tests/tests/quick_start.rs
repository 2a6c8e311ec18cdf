//! `docs/quick-start.md`, walked as far as it goes without the clouds: the
//! commands are read from the page, so the page cannot drift from what
//! works. Each step runs its local counterpart with the page's own
//! settings: the clone is a copy of the repository's files; `wrangler
//! secret put` becomes `.dev.vars`; `wrangler deploy --var ...` becomes
//! `wrangler dev` with the same vars (and the CloudWatch emulator's
//! endpoint); `cargo lambda deploy --env-var ...` and `cargo lambda invoke
//! --data-ascii ...` run the function under the project's Lambda Runtime
//! API with the same variables and payload. The metrics are read back from
//! moto.

use std::time::Duration;

use edgepush_tests::lambda_api::{LambdaApi, lambda_example_binary};
use edgepush_tests::{Moto, WranglerDev, clean_copy, eventually, repo_root};
use serde_json::Value;

/// The commands of the page's `sh` block, one per line, comments removed.
fn commands() -> Vec<String> {
    let page = std::fs::read_to_string(repo_root().join("docs/quick-start.md")).expect("page");
    let block = page
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("an sh block");
    block
        .lines()
        .map(|l| l.split("  #").next().unwrap_or(l).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The values after each `flag` in `command` (`--var K:V`, `--env-var K=V`).
fn values<'a>(command: &'a str, flag: &str) -> Vec<&'a str> {
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1])
        .collect()
}

#[test]
fn the_quick_start_works_end_to_end_locally() {
    let commands = commands();
    assert!(commands.len() <= 10, "under ten commands: {commands:#?}");
    let find = |start: &str| {
        commands
            .iter()
            .find(|c| c.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` in the quick start: {commands:#?}"))
    };
    assert!(find("git clone ").ends_with("&& cd edgepush"));
    find("npx wrangler@4 login");
    find("cargo lambda build --release");

    let dir = tempfile::tempdir().expect("temp dir");
    let clone = dir.path().join("edgepush");
    clean_copy(&clone);
    let mut moto = Moto::start(dir.path());

    // `wrangler secret put NAME` -> .dev.vars, what `wrangler dev` reads.
    let key = "quick-start-key";
    let mut dev_vars = String::new();
    for command in commands
        .iter()
        .filter(|c| c.starts_with("npx wrangler@4 secret put "))
    {
        let name = command.rsplit(' ').next().expect("a name");
        let value = match name {
            "EDGEPUSH_API_KEYS" => key,
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "testing",
            other => panic!("a secret the walk does not know: {other}"),
        };
        dev_vars.push_str(&format!("{name}={value}\n"));
    }
    std::fs::write(clone.join(".dev.vars"), dev_vars).expect(".dev.vars");

    // `wrangler deploy --var ...` -> `wrangler dev` with the same vars.
    let deploy = find("npx wrangler@4 deploy");
    let mut vars: Vec<String> = values(deploy, "--var")
        .into_iter()
        .map(String::from)
        .collect();
    // The one local addition: CloudWatch is the emulator.
    vars.push(format!("EDGEPUSH_CLOUDWATCH_ENDPOINT:{}/", moto.url));
    let wrangler = WranglerDev::start(dir.path(), &clone, &vars);
    let receiver = wrangler.url.clone();

    // `cargo lambda deploy --env-var ...` and `invoke --data-ascii ...` ->
    // the function under the Runtime API with the same variables.
    let lambda_deploy = find("cargo lambda deploy lambda-example");
    let env: Vec<(String, String)> = values(lambda_deploy, "--env-var")
        .into_iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("K=V");
            let v = match k {
                "EDGEPUSH_URL" => receiver.clone(),
                "EDGEPUSH_API_KEY" => key.to_string(),
                _ => v.to_string(),
            };
            (k.to_string(), v)
        })
        .collect();
    assert_eq!(
        env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["EDGEPUSH_URL", "EDGEPUSH_API_KEY"]
    );
    let invoke = find("cargo lambda invoke --remote lambda-example");
    let payload: Value = serde_json::from_str(
        invoke
            .split("--data-ascii '")
            .nth(1)
            .and_then(|p| p.strip_suffix('\''))
            .expect("a payload"),
    )
    .expect("JSON payload");
    let api = LambdaApi::start();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut function = api.start_function(dir.path(), &lambda_example_binary(), &env);
    let invoked = api.invoke(payload.clone(), Duration::from_secs(30));
    assert!(invoked.response.is_some(), "{}", function.log_text());

    let region = values(deploy, "--var")
        .iter()
        .find_map(|v| v.strip_prefix("EDGEPUSH_CLOUDWATCH_REGION:"))
        .expect("the deploy sets the region");
    eventually(Duration::from_secs(30), || {
        let metrics = moto.metrics_in("LambdaExample", region);
        let sum = |name: &str| {
            metrics
                .iter()
                .filter(|m| m["name"] == name && m["dimensions"]["tenant"] == payload["tenant"])
                .map(|m| m["sum"].as_f64().unwrap_or_default())
                .sum::<f64>()
        };
        assert_eq!(sum("orders"), 1.0, "{metrics:#?}\n{}", wrangler.log_text());
        assert_eq!(sum("items"), payload["items"].as_f64().expect("items"));
        assert_eq!(
            sum("order_value"),
            payload["cents"].as_f64().expect("cents")
        );
        assert_eq!(
            sum("payment_latency"),
            payload["payment_ms"].as_f64().expect("ms")
        );
    });
    function.assert_running();
}
