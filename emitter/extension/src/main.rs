//! `edgepush-extension`: the external Lambda extension (in a layer, at
//! `extensions/edgepush-extension`). Settings come from the function's
//! environment (see [`edgepush_extension::Settings::from_env`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    let settings = match edgepush_extension::Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("edgepush-extension: bad setting: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One thread: an extension shares the function's CPU.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("edgepush-extension: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(edgepush_extension::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgepush-extension: {e}");
            ExitCode::FAILURE
        }
    }
}
