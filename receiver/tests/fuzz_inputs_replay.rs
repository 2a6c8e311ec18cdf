//! Every input kept for the fuzz targets runs through its target in `cargo
//! test`, not only under `cargo fuzz`: the seeds
//! (`receiver/fuzz/seeds/<target>/`) and each input that once crashed a
//! target (`receiver/fuzz/regressions/<target>/`, kept once the crash was
//! fixed). The targets are the fuzz crate's own functions
//! (`receiver/fuzz/src/lib.rs`), included here as a module.

use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz;

/// The inputs under `dir/<target>/`, by target.
fn inputs(dir: &str) -> Vec<(String, std::path::PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut all = Vec::new();
    for target in std::fs::read_dir(&root).expect("the folder") {
        let target = target.expect("entry").path();
        if !target.is_dir() {
            continue;
        }
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a target name")
            .to_string();
        for input in std::fs::read_dir(&target).expect("inputs") {
            all.push((name.clone(), input.expect("input").path()));
        }
    }
    all.sort();
    all
}

fn replay(dir: &str) -> usize {
    let all = inputs(dir);
    for (target, path) in &all {
        let (_, run) = fuzz::TARGETS
            .iter()
            .find(|(name, _)| name == target)
            .unwrap_or_else(|| panic!("{}: no fuzz target {target}", path.display()));
        let data = std::fs::read(path).expect("an input");
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
    all.len()
}

#[test]
fn every_target_is_listed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("fuzz_targets")
        .map(|f| {
            let path = f.expect("entry").path();
            path.file_stem()
                .and_then(|s| s.to_str())
                .expect("a name")
                .to_string()
        })
        .collect();
    files.sort();
    let listed: Vec<String> = fuzz::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        listed, files,
        "fuzz::TARGETS lists every file in fuzz_targets/"
    );
}

#[test]
fn inputs_that_once_crashed_a_target_pass_it() {
    let n = replay("regressions");
    assert!(n >= 2, "the regression inputs are found ({n})");
}

#[test]
fn every_seed_passes_its_target() {
    let n = replay("seeds");
    assert!(n >= fuzz::TARGETS.len(), "seeds are found ({n})");
}
