//! A throwaway PostgreSQL cluster for one test run: `initdb` in a temporary directory, the
//! server on a free loopback port with trust authentication for the `postgres` role, stopped
//! and deleted when the [`Cluster`] is dropped. Needs no machine configuration: only Debian's
//! server binaries (`/usr/lib/postgresql/*/bin`), installed from the `postgresql` package when
//! missing. PostgreSQL refuses to run as root, so as root the server runs as the `postgres`
//! user the package creates.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{ensure_apt, is_root, run};

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The newest installed server's `bin` directory.
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// A port nobody listens on right now (the kernel picks it; the listener is closed again).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl Cluster {
    pub fn start() -> Result<Cluster, String> {
        let bin = match server_bin() {
            Some(bin) => bin,
            None => {
                ensure_apt(&["postgresql"])?;
                server_bin().ok_or(
                    "the `postgresql` package installed no server under /usr/lib/postgresql",
                )?
            }
        };
        let as_postgres = is_root();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("lineage-xtask-pg-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = free_port()?;
        let cluster = Cluster {
            bin,
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir))
            .map_err(|e| format!("{e}: as root, the test cluster runs as the `postgres` user"))?;
        }
        let data = cluster.dir.join("data");
        run(cluster
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(std::process::Stdio::null()))?;
        // Loopback only, the socket inside the cluster's own directory; fsync off because the
        // cluster is thrown away (the suite tests Lineage's transactions, not the disk).
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=300",
            cluster.port,
            cluster.dir.display()
        );
        eprintln!(
            "xtask: starting a test PostgreSQL on 127.0.0.1:{}",
            cluster.port
        );
        run(cluster
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(cluster.dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"]))
        .map_err(|e| {
            let log = std::fs::read_to_string(cluster.dir.join("server.log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })?;
        Ok(cluster)
    }

    /// A command running one of the server's programs, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            // The server's own working directory must be readable by its user.
            cmd.current_dir(&self.dir);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        run(Command::new(self.bin.join("psql"))
            .arg(self.url("postgres"))
            .args(["-v", "ON_ERROR_STOP=1", "-qc"])
            .arg(format!("CREATE DATABASE {name}")))?;
        Ok(self.url(name))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = run(self.command("pg_ctl").arg("-D").arg(&data).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
        remove(&self.dir);
    }
}

fn remove(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("xtask: could not remove {}: {e}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_on_loopback_takes_a_database_and_is_gone_when_dropped() {
        let cluster = Cluster::start().expect("the test cluster starts");
        let dir = cluster.dir.clone();
        let url = cluster.create_database("xtask_probe").unwrap();
        assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
        let out = Command::new(cluster.bin.join("psql"))
            .arg(&url)
            .args(["-Atqc", "SELECT current_database()"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "xtask_probe");
        drop(cluster);
        assert!(!dir.exists(), "the cluster's directory is removed");
        let after = Command::new("psql")
            .arg(&url)
            .args(["-Atqc", "SELECT 1"])
            .output()
            .unwrap();
        assert!(!after.status.success(), "the server is stopped");
    }
}
