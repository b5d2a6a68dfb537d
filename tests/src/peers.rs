//! Locating the external peers (Node packages, the Python venv) that
//! `scripts/install-peers.sh` installs. Under `CI=true` a missing peer is a
//! failure, never a skip.

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Whether this run is in CI, where missing peers fail.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns whether `what` is available; if not, fails under CI and prints a
/// loud skip notice otherwise.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    let hint = "run scripts/install-peers.sh";
    if in_ci() {
        panic!("{what} is missing ({hint}); CI requires every interop peer");
    }
    eprintln!("SKIPPED: {what} is missing ({hint})");
    false
}

/// `tests/interop`, where the Node and Python peer scripts live.
pub fn interop_dir() -> PathBuf {
    workspace_root().join("tests").join("interop")
}

/// Whether the Node packages are installed.
pub fn node_ready() -> bool {
    interop_dir().join("node_modules").join("ws").exists()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// The Python of the peers' virtualenv.
pub fn python() -> PathBuf {
    workspace_root()
        .join(".cache")
        .join("venv")
        .join("bin")
        .join("python")
}
