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

/// A child process that exits when its stdin closes (our Node peers do),
/// killed on drop in any case.
pub struct PeerProcess {
    child: std::process::Child,
    /// The port it printed (`listening <port>`).
    pub port: u16,
}

impl PeerProcess {
    /// Spawns `node script args...` in `tests/interop` and waits for its
    /// `listening <port>` line.
    pub fn spawn_node(script: &str, args: &[&str]) -> PeerProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new("node")
            .arg(interop_dir().join(script))
            .args(args)
            .current_dir(interop_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read port line");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from {script}: {line:?}"));
        PeerProcess { child, port }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a peer client command to completion (at most `timeout`), returning
/// whether it succeeded and its combined output.
pub fn run_peer(
    mut command: std::process::Command,
    timeout: std::time::Duration,
) -> (bool, String) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn peer");
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return (status.success(), text);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            return (
                false,
                format!("timed out\n{}", String::from_utf8_lossy(&output.stdout)),
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
