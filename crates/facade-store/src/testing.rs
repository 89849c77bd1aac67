//! Test support: a private, throw-away PostgreSQL cluster for the tests that need a real
//! server (this crate's, and the CLI's queue and service tests).
//!
//! [`TestCluster::start`] runs Debian's (or any) PostgreSQL binaries: `initdb` into a temporary
//! folder, then the server on a free loopback port with its socket in that folder. The server
//! refuses to run as root, so under root every command runs as the `postgres` user (which
//! Debian's package creates) through `runuser`. The cluster is stopped and its folder removed
//! when the value drops. Binaries are looked for in `$FACADE_PG_BIN`, then the newest
//! `/usr/lib/postgresql/*/bin`, then `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running private PostgreSQL server.
pub struct TestCluster {
    bin: PathBuf,
    root: tempfile::TempDir,
    port: u16,
    /// Run the server's commands as this user (`postgres` when we are root).
    run_as: Option<String>,
}

/// Why no cluster could be started, and how to make one startable.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to tell a user whose machine has no PostgreSQL.
pub const HOW_TO_INSTALL: &str =
    "install PostgreSQL (Debian: apt-get install postgresql) or set FACADE_PG_BIN to its bin/";

static DATABASES: AtomicU32 = AtomicU32::new(0);

impl TestCluster {
    /// Initialises and starts a new cluster, or says why it cannot.
    pub fn start() -> Result<TestCluster, Unavailable> {
        let bin = binaries().ok_or_else(|| {
            Unavailable("PostgreSQL's initdb and pg_ctl were not found".to_owned())
        })?;
        let run_as = is_root().then(|| "postgres".to_owned());
        let root = tempfile::Builder::new()
            .prefix("facade-pg-")
            .tempdir()
            .map_err(|e| Unavailable(format!("creating a temporary folder: {e}")))?;
        if let Some(user) = &run_as {
            let chown = Command::new("chown")
                .arg(user)
                .arg(root.path())
                .status()
                .map_err(|e| Unavailable(format!("chown: {e}")))?;
            if !chown.success() {
                return Err(Unavailable(format!(
                    "running as root, the cluster must belong to the user {user:?}, and chown failed"
                )));
            }
        }
        let mut cluster = TestCluster {
            bin,
            root,
            port: 0,
            run_as,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                "facade",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        // A port the kernel just handed out and took back; taken again in the rare case
        // another process got it in between.
        for _ in 0..5 {
            cluster.port = free_port()?;
            if cluster.start_server().is_ok() {
                return Ok(cluster);
            }
        }
        cluster.start_server()?;
        Ok(cluster)
    }

    /// A URL of the database `name` (which must exist; see [`TestCluster::new_database`]).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://facade@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a fresh database and returns its URL: one per test keeps tests apart.
    pub fn new_database(&self) -> String {
        let name = format!(
            "facade_test_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connecting to the test cluster");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("creating a test database");
        self.url(&name)
    }

    /// Stops the server the way an operator's restart or a crash does (`immediate`: no
    /// checkpoint, connections cut), and starts it again on the same port.
    pub fn restart(&self) {
        self.stop_server("immediate");
        self.start_server()
            .expect("starting the test cluster again");
    }

    /// Stops the server (connections cut) without removing the cluster.
    pub fn stop(&self) {
        self.stop_server("immediate");
    }

    /// Starts a stopped server again.
    pub fn start_again(&self) {
        self.start_server()
            .expect("starting the test cluster again");
    }

    fn data_dir(&self) -> String {
        self.root.path().join("data").to_string_lossy().into_owned()
    }

    fn start_server(&self) -> Result<(), Unavailable> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c max_connections=60",
            self.port,
            self.root.path().display()
        );
        let log = self.root.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    fn stop_server(&self, mode: &str) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", mode, "-w", "stop"],
        );
    }

    /// Runs one of the server's programs (as the cluster's user), failing with its output.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), Unavailable> {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Unavailable(format!("running {}: {e}", program.display())))?;
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default();
        Err(Unavailable(format!(
            "{} {} failed: {}{}\n{log}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop_server("immediate");
    }
}

fn binaries() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("FACADE_PG_BIN").map(PathBuf::from) {
        return has_tools(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| has_tools(dir))
}

fn is_root() -> bool {
    // The real user id, without a libc binding: `id -u` is everywhere the server is.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> Result<u16, Unavailable> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Unavailable(format!("finding a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Unavailable(format!("finding a free port: {e}")))
}
