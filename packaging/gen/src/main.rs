//! gitops-agent-gen: the man pages and shell completions that packaging/build.sh puts into the
//! .deb and .rpm, generated from gitops-agent's clap definition (`agent/src/cli.rs`, compiled
//! here as a module), so they never disagree with `gitops-agent --help`.
//!
//!   gitops-agent-gen man --out DIR                  gitops-agent.1, gitops-agent-<subcommand>.1
//!   gitops-agent-gen completions bash|zsh|fish|elvish|powershell --out DIR

#[allow(dead_code)]
#[path = "../../../agent/src/cli.rs"]
mod cli;

/// The configuration schema, which `cli.rs` generates the key flags from (as
/// `crate::config::keys`, its path in the agent).
#[allow(dead_code)]
#[path = "../../../agent/src/config/keys.rs"]
pub mod keys;
mod config {
    pub(crate) use super::keys;
}

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Parser};

#[derive(Parser)]
#[command(
    name = "gitops-agent-gen",
    about = "Man pages and shell completions of gitops-agent"
)]
enum Gen {
    /// Man pages: gitops-agent.1 and gitops-agent-<subcommand>.1, into DIR.
    Man {
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// The completion script for SHELL, into DIR (bash: gitops-agent.bash, zsh: _gitops-agent,
    /// fish: gitops-agent.fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Gen::parse() {
        Gen::Man { out } => man(&out),
        Gen::Completions { shell, out } => completions(shell, &out),
    }
}

fn command() -> clap::Command {
    let mut cmd = cli::Cli::command();
    cmd.build();
    cmd
}

fn man(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cmd = command();
    write_man(&cmd, out, "gitops-agent")?;
    append_config_keys(&out.join("gitops-agent.1"))?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("gitops-agent-{}", sub.get_name());
        // The subcommand's own page under its full name (clap names are &'static str without
        // clap's `string` feature: leak the few bytes, this process writes a few files and exits).
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        let sub = sub.clone().name(leaked).version(env!("CARGO_PKG_VERSION"));
        write_man(&sub, out, &name)?;
    }
    Ok(())
}

fn write_man(cmd: &clap::Command, out: &Path, name: &str) -> anyhow::Result<()> {
    let path = out.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("1")
        .source(format!("gitops-agent {}", env!("CARGO_PKG_VERSION")))
        .manual("gitops-agent manual")
        .render(&mut buf)
        .with_context(|| format!("rendering {name}.1"))?;
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// A CONFIGURATION section listing every key of the schema (`agent/src/config/keys.rs`) with
/// its flag and default, appended to gitops-agent.1.
fn append_config_keys(page: &Path) -> anyhow::Result<()> {
    use config::keys::{Flag, Kind, Scope, KEYS};
    let esc = |s: &str| s.replace('\\', "\\\\").replace('-', "\\-");
    let mut roff = String::from(
        ".SH CONFIGURATION\n\
         Every key of /etc/gitops-agent/config.yml can also be given on the command line, to \
         \\fBconverge\\fR and \\fBrun\\fR unless marked otherwise; the command line wins over \
         the file, the file over the defaults.\n",
    );
    for key in KEYS {
        let flag = match key.flag {
            Flag::Switch(name, to) => format!("\\-\\-{} (sets {to})", esc(name)),
            Flag::Value(name) | Flag::Repeated(name) => {
                format!("\\-\\-{} {}", esc(name), key.value_name)
            }
        };
        let scope = match (key.scope, key.kind) {
            (Scope::Daemon, _) => " (run only)",
            (_, Kind::Vars) => " (converge only)",
            _ => "",
        };
        let default = key
            .default
            .map(|d| format!(", default {}", esc(d)))
            .unwrap_or_default();
        roff.push_str(&format!(
            ".TP\n\\fB{}\\fR: {flag}{scope}{default}\n{}\n",
            esc(key.name),
            esc(key.doc)
        ));
    }
    let mut text =
        std::fs::read_to_string(page).with_context(|| format!("reading {}", page.display()))?;
    text.push_str(&roff);
    std::fs::write(page, text).with_context(|| format!("writing {}", page.display()))
}

fn completions(shell: clap_complete::Shell, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = command();
    let path = clap_complete::generate_to(shell, &mut cmd, "gitops-agent", out)
        .with_context(|| format!("writing the {shell} completions into {}", out.display()))?;
    println!("{}", path.display());
    Ok(())
}
