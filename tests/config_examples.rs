//! Every example configuration under config/ is valid, and `promgate check-config` agrees.

use std::path::PathBuf;
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_is_valid() {
    let files = examples();
    assert!(
        files.len() >= 2,
        "expected example configs, found {files:?}"
    );
    for file in files {
        if let Err(e) = promgate::config::Config::load(&file) {
            panic!("{}: {e}", file.display());
        }
    }
}

#[test]
fn check_config_exits_zero_for_examples_and_one_with_every_problem() {
    let bin = env!("CARGO_BIN_EXE_promgate");
    for file in examples() {
        let out = Command::new(bin)
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {:?}", file.display(), out);
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[query]\nreplica_label = [\"replica\"]\n[[backend]]\nname = \"a\"\nkind = \"prometheus\"\nurl = \"http://h:1\"\n[[backend]]\nname = \"b\"\nkind = \"prometheus\"\nurl = \"h/api\"\n[[backend]]\nname = \"c\"\nkind = \"prometheus\"\nurl = \"/x\"\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "query.replica_label: unknown key",
        "backend[1].url: relative URL without a base",
        "backend[2].url: relative URL without a base",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
}
