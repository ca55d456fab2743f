//! Finding the host's ansible-core (a python3 that can `import ansible`) and, in it or in the
//! installed collections, the Python module a module name stands for.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::BridgeError;

/// A python3 with ansible-core.
#[derive(Debug, Clone)]
pub struct Interpreter {
    pub python: PathBuf,
    /// The `ansible` package's directory (…/site-packages/ansible).
    pub ansible_dir: PathBuf,
    /// ansible-core's version (`_ansible_version`).
    pub version: String,
}

/// What runs a module: the Python module to run with `-m` and the directories that must be
/// on `PYTHONPATH` for it (collection roots).
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub python_module: String,
    pub pythonpath: Vec<PathBuf>,
    /// The fully qualified name (`ansible.builtin.stat`, `community.general.ini_file`).
    pub fqcn: String,
}

/// Prints where ansible is, or why it cannot be imported (one JSON line).
const PROBE: &str = "import json, os, sys\n\
try:\n    import ansible, ansible.release\nexcept Exception as e:\n    \
print(json.dumps({'error': repr(e)}))\n    sys.exit(0)\n\
print(json.dumps({'dir': os.path.dirname(ansible.__file__), 'version': ansible.release.__version__}))\n";

/// The interpreter: the configured one, else the first python3 found that imports ansible
/// (the one `ansible-playbook` runs with, then python3 on PATH, then /usr/bin/python3).
pub fn interpreter(configured: Option<&Path>) -> Result<Interpreter, BridgeError> {
    if let Some(p) = configured {
        return probe(p).map_err(|why| {
            BridgeError::NoInterpreter(format!(
                "{} cannot import ansible ({why}): install ansible-core for it (e.g. `{} -m pip \
             install ansible-core`) or set `ansible_python` to a python3 that has it",
                p.display(),
                p.display()
            ))
        });
    }
    let mut tried = Vec::new();
    for candidate in candidates() {
        match probe(&candidate) {
            Ok(i) => return Ok(i),
            Err(why) => tried.push(format!("{} ({why})", candidate.display())),
        }
    }
    Err(BridgeError::NoInterpreter(format!(
        "no python3 with ansible-core found (tried: {}): install ansible-core (apt install \
         ansible-core, dnf install ansible-core or pip install ansible-core) or set \
         `ansible_python` to the python3 that has it",
        if tried.is_empty() {
            "none".to_string()
        } else {
            tried.join(", ")
        }
    )))
}

/// Where to look for a python3 with ansible, in order, without duplicates.
fn candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // The interpreter of `ansible-playbook`'s shebang (a venv or pipx install).
    for d in &dirs {
        if let Some(p) = shebang_python(&d.join("ansible-playbook")) {
            out.push(p);
            break;
        }
    }
    for d in &dirs {
        let p = d.join("python3");
        if p.is_file() {
            out.push(p);
            break;
        }
    }
    out.push(PathBuf::from("/usr/bin/python3"));
    let mut seen = Vec::new();
    out.retain(|p| {
        let keep = !seen.contains(p);
        seen.push(p.clone());
        keep
    });
    out
}

/// The interpreter named by a script's `#!` line, when it is a python.
fn shebang_python(script: &Path) -> Option<PathBuf> {
    let text = std::fs::read(script).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?.trim();
    let mut words = line.split_whitespace();
    let prog = words.next()?;
    let prog = if prog.ends_with("/env") {
        words.next()?
    } else {
        prog
    };
    if !prog.contains("python") {
        return None;
    }
    Some(PathBuf::from(prog))
}

fn probe(python: &Path) -> Result<Interpreter, String> {
    let out = Command::new(python)
        .arg("-c")
        .arg(PROBE)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|_| {
        format!(
            "exit {}: {}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(e.to_string());
    }
    match (
        v.get("dir").and_then(|d| d.as_str()),
        v.get("version").and_then(|d| d.as_str()),
    ) {
        (Some(dir), Some(version)) => Ok(Interpreter {
            python: python.to_path_buf(),
            ansible_dir: PathBuf::from(dir),
            version: version.to_string(),
        }),
        _ => Err("unexpected probe output".into()),
    }
}

/// The roots that hold `ansible_collections/`: `first` (the playbook's own `collections/`
/// directory, which Ansible searches first), ANSIBLE_COLLECTIONS_PATH (or its default,
/// ~/.ansible/collections and /usr/share/ansible/collections), then the site-packages of
/// ansible (the `ansible` package's bundled collections).
pub fn collection_roots(interp: &Interpreter, first: &[PathBuf]) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = first.to_vec();
    roots.extend(
        match std::env::var_os("ANSIBLE_COLLECTIONS_PATH")
            .or_else(|| std::env::var_os("ANSIBLE_COLLECTIONS_PATHS"))
        {
            Some(p) => std::env::split_paths(&p).collect(),
            None => {
                let mut v = Vec::new();
                if let Some(home) = std::env::var_os("HOME") {
                    v.push(Path::new(&home).join(".ansible/collections"));
                }
                v.push(PathBuf::from("/usr/share/ansible/collections"));
                v
            }
        },
    );
    if let Some(site) = interp.ansible_dir.parent() {
        roots.push(site.to_path_buf());
    }
    // A root may be given as its `ansible_collections` directory itself.
    roots
        .into_iter()
        .map(|r| {
            if r.file_name().is_some_and(|n| n == "ansible_collections") {
                r.parent().map(Path::to_path_buf).unwrap_or(r)
            } else {
                r
            }
        })
        .filter(|r| r.join("ansible_collections").is_dir())
        .collect()
}

/// Finds the module `name` (short, `ansible.builtin.x`, `ansible.legacy.x` or a collection's
/// FQCN); a short name ansible-core routes to a collection
/// (ansible/config/ansible_builtin_runtime.yml) is followed there.
pub fn module(interp: &Interpreter, name: &str, first: &[PathBuf]) -> Result<Located, BridgeError> {
    let roots = collection_roots(interp, first);
    if let Some(short) = super::plugins::builtin_short(name) {
        if valid_name(short)
            && interp
                .ansible_dir
                .join(format!("modules/{short}.py"))
                .is_file()
        {
            return Ok(Located {
                python_module: format!("ansible.modules.{short}"),
                pythonpath: Vec::new(),
                fqcn: format!("ansible.builtin.{short}"),
            });
        }
        return match builtin_redirect(interp, short)? {
            Some(fqcn) => collection_module(&roots, &fqcn, name),
            None => Err(BridgeError::ModuleNotFound {
                name: name.to_string(),
                fix: format!(
                    "ansible-core {} at {} has no module `{short}`: check the name, or install \
                     the collection that has it and write its full name (namespace.collection.{short})",
                    interp.version,
                    interp.ansible_dir.display()
                ),
            }),
        };
    }
    collection_module(&roots, name, name)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `ns.coll.mod` (or `ns.coll.dir.mod`) under one of the collection roots.
fn collection_module(roots: &[PathBuf], fqcn: &str, written: &str) -> Result<Located, BridgeError> {
    let parts: Vec<&str> = fqcn.split('.').collect();
    if parts.len() < 3 || !parts.iter().all(|p| valid_name(p)) {
        return Err(BridgeError::ModuleNotFound {
            name: written.to_string(),
            fix: format!("`{fqcn}` is not a module name (namespace.collection.module)"),
        });
    }
    let (ns, coll, rest) = (parts[0], parts[1], &parts[2..]);
    let rel = format!(
        "ansible_collections/{ns}/{coll}/plugins/modules/{}.py",
        rest.join("/")
    );
    for root in roots {
        if root.join(&rel).is_file() {
            let action = root.join(format!(
                "ansible_collections/{ns}/{coll}/plugins/action/{}.py",
                rest.join("/")
            ));
            if action.is_file() {
                return Err(BridgeError::Refused(
                    super::plugins::collection_plugin_refusal(written),
                ));
            }
            return Ok(Located {
                python_module: format!(
                    "ansible_collections.{ns}.{coll}.plugins.modules.{}",
                    rest.join(".")
                ),
                pythonpath: roots.to_vec(),
                fqcn: fqcn.to_string(),
            });
        }
    }
    let looked: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    Err(BridgeError::ModuleNotFound {
        name: written.to_string(),
        fix: format!(
            "module `{fqcn}` not found in the collections of this host ({}): install the \
             collection (`ansible-galaxy collection install {ns}.{coll}`) or set \
             ANSIBLE_COLLECTIONS_PATH",
            if looked.is_empty() {
                "none installed".to_string()
            } else {
                looked.join(", ")
            }
        ),
    })
}

/// Where ansible-core's routing table sends the builtin short name `short`, if anywhere.
fn builtin_redirect(interp: &Interpreter, short: &str) -> Result<Option<String>, BridgeError> {
    let file = interp
        .ansible_dir
        .join("config/ansible_builtin_runtime.yml");
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(None);
    };
    Ok(redirect_in(&text, short))
}

/// The `redirect:` of `plugin_routing.modules.<short>` in a runtime.yml text. A line scan:
/// the file is large and regular (two-space indents), parsing all of it is not needed.
pub(super) fn redirect_in(text: &str, short: &str) -> Option<String> {
    let mut in_modules = false;
    let mut in_entry = false;
    let entry = format!("    {short}:");
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_modules = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ") {
            if !rest.starts_with(' ') {
                in_modules = rest.trim_end() == "modules:";
                in_entry = false;
                continue;
            }
        }
        if !in_modules {
            continue;
        }
        if line.starts_with("    ") && !line.starts_with("     ") {
            in_entry = line.trim_end() == entry;
            continue;
        }
        if in_entry {
            if let Some(target) = line.trim().strip_prefix("redirect:") {
                return Some(target.trim().trim_matches(['"', '\'']).to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNTIME: &str = "plugin_routing:\n  connection:\n    ini_file:\n      redirect: x.y.z\n  modules:\n    aix_lvol:\n      redirect: community.general.aix_lvol\n    ini_file:\n      redirect: community.general.ini_file\n    gone:\n      tombstone:\n        removal_version: 2.0\n  module_utils:\n    other:\n      redirect: a.b.c\n";

    #[test]
    fn routing_table_redirects_short_names() {
        assert_eq!(
            redirect_in(RUNTIME, "ini_file").as_deref(),
            Some("community.general.ini_file")
        );
        assert_eq!(redirect_in(RUNTIME, "gone"), None);
        assert_eq!(redirect_in(RUNTIME, "other"), None);
        assert_eq!(redirect_in(RUNTIME, "nothing"), None);
    }

    #[test]
    fn shebang_python_reads_env_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("ansible-playbook");
        std::fs::write(&s, "#!/opt/venv/bin/python3\nimport x\n").unwrap();
        assert_eq!(
            shebang_python(&s),
            Some(PathBuf::from("/opt/venv/bin/python3"))
        );
        std::fs::write(&s, "#!/usr/bin/env python3\n").unwrap();
        assert_eq!(shebang_python(&s), Some(PathBuf::from("python3")));
        std::fs::write(&s, "#!/bin/sh\n").unwrap();
        assert_eq!(shebang_python(&s), None);
    }

    #[test]
    fn collection_modules_are_found_under_their_root_and_action_plugins_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("ansible_collections/ns/coll/plugins");
        std::fs::create_dir_all(base.join("modules/sub")).unwrap();
        std::fs::create_dir_all(base.join("action")).unwrap();
        std::fs::write(base.join("modules/thing.py"), "").unwrap();
        std::fs::write(base.join("modules/sub/deep.py"), "").unwrap();
        std::fs::write(base.join("modules/sync.py"), "").unwrap();
        std::fs::write(base.join("action/sync.py"), "").unwrap();
        let roots = vec![dir.path().to_path_buf()];
        let found = collection_module(&roots, "ns.coll.thing", "ns.coll.thing").unwrap();
        assert_eq!(
            found.python_module,
            "ansible_collections.ns.coll.plugins.modules.thing"
        );
        assert_eq!(found.pythonpath, roots);
        let deep = collection_module(&roots, "ns.coll.sub.deep", "ns.coll.sub.deep").unwrap();
        assert_eq!(
            deep.python_module,
            "ansible_collections.ns.coll.plugins.modules.sub.deep"
        );
        let refused = collection_module(&roots, "ns.coll.sync", "ns.coll.sync").unwrap_err();
        assert!(matches!(refused, BridgeError::Refused(_)), "{refused}");
        assert!(refused.to_string().contains("`ns.coll.sync`"), "{refused}");
    }

    #[test]
    fn collection_names_must_be_three_parts() {
        let e = collection_module(&[], "community.general", "community.general").unwrap_err();
        assert!(e.to_string().contains("not a module name"), "{e}");
        let e = collection_module(&[], "community.general.nope", "nope").unwrap_err();
        assert!(
            e.to_string()
                .contains("ansible-galaxy collection install community.general"),
            "{e}"
        );
    }
}
