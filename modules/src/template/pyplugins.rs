//! Collection filter and test plugins (`debops.debops.parse_kv_items`, `ansible.utils.ipaddr`)
//! run by the host's Python, as ansible-core on the host (the controller of ansible-pull) runs
//! them. Off unless the agent is configured to run Ansible's own code (`ansible_modules: auto`):
//! then one Python process per agent process serves every call, one JSON line each way.
//!
//! Where the plugins are: the repository's `collections/ansible_collections/<ns>/<coll>/`
//! (copied — `plugins/` and `meta/runtime.yml` only — to a private temporary directory, since
//! a pull-mode repository is a Git tree, not files), then the host's collection paths
//! (`ANSIBLE_COLLECTIONS_PATH`, `~/.ansible/collections`, `/usr/share/ansible/collections`) and
//! the Python's own `sys.path` (the `ansible` package's bundled collections). Redirects of the
//! collections' `meta/runtime.yml` are followed. A plugin that cannot be found, imported or
//! run fails the template naming it; a result that is not plain data is an error.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use minijinja::value::{Kwargs, Rest};
use minijinja::{Error, ErrorKind, Value};

use std::sync::Arc;

use crate::bridge::locate::collection_roots;
use crate::bridge::Bridge;
use crate::source::{RepoPath, SourceKind};

/// The bridge to the host's ansible-core of the run in progress: `None` (the default, and
/// `ansible_modules: off`) refuses collection plugins.
static BRIDGE: Mutex<Option<Arc<Bridge>>> = Mutex::new(None);
static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

/// Lets collection filter and test plugins run with the bridge's interpreter (`None`: refused,
/// naming the setting). The engine sets it when a run starts.
pub fn set_bridge(bridge: Option<Arc<Bridge>>) {
    let mut slot = BRIDGE.lock().unwrap_or_else(|p| p.into_inner());
    let same = match (&*slot, &bridge) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    if !same {
        *slot = bridge;
        stop_worker();
    }
}

/// Stops the Python process, if one runs (the next call starts one for the repository then
/// in use).
pub fn stop_worker() {
    if let Some(mut w) = WORKER.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The repository the collections were copied from (`Source::describe`).
    source: String,
    /// The copied collections; removed with the worker.
    _dir: tempfile::TempDir,
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// `x | ns.coll.name(args)`, rewritten by [`super::fqcn`] to `x | __fqcn_filter("ns.coll.name", args)`.
pub(crate) fn filter(
    value: Value,
    name: String,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    call("filter", &name, value, &args, kwargs)
}

/// `x is ns.coll.name(args)`.
pub(crate) fn test(
    value: Value,
    name: String,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    Ok(call("test", &name, value, &args, kwargs)?.is_true())
}

fn call(
    kind: &str,
    name: &str,
    value: Value,
    args: &[Value],
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let Some(bridge) = BRIDGE.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
        return Err(err(format!(
            "{kind} `{name}` is a plugin of the collection {}: the agent runs collection \
             plugins with the host's Python only when its configuration says \
             `ansible_modules: auto` (docs/modules/ansible-bridge.md)",
            collection_of(name)
        )));
    };
    let mut kw = serde_json::Map::new();
    for key in kwargs.args() {
        let v: Value = kwargs.get(key)?;
        kw.insert(key.to_string(), to_json(&v, name)?);
    }
    let mut positional = vec![to_json(&value, name)?];
    for a in args {
        positional.push(to_json(a, name)?);
    }
    let request = serde_json::json!({"kind": kind, "name": name, "args": positional, "kwargs": kw});
    let source =
        crate::lookup::with_frame(|fr| fr.map(|fr| fr.source.describe())).unwrap_or_default();
    let mut slot = WORKER.lock().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_some_and(|w| w.source != source) {
        if let Some(mut w) = slot.take() {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
    if slot.is_none() {
        let interp = bridge
            .interpreter()
            .map_err(|e| err(format!("{kind} `{name}`: {e}")))?;
        *slot = Some(start(&interp.python, source, |copied| {
            collection_roots(interp, &[copied.to_path_buf()])
        })?);
    }
    let Some(w) = slot.as_mut() else {
        return Err(err("internal error: no plugin worker"));
    };
    let reply = exchange(w, &request);
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            // A dead or confused worker is not reused.
            if let Some(mut w) = slot.take() {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
            return Err(err(format!(
                "{kind} `{name}`: the Python plugin process failed: {e}"
            )));
        }
    };
    if let Some(e) = reply.get("error").and_then(|e| e.as_str()) {
        return Err(err(format!("{kind} `{name}` failed: {e}")));
    }
    match reply.get("ok") {
        Some(v) => Ok(crate::template::filters::encoding::json_to_value(v.clone())),
        None => Err(err(format!(
            "{kind} `{name}`: no result from the Python plugin process"
        ))),
    }
}

fn collection_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(c, _)| c)
}

fn to_json(v: &Value, name: &str) -> Result<serde_json::Value, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("an undefined value passed to `{name}`"),
        ));
    }
    serde_json::to_value(v)
        .map_err(|e| err(format!("`{name}`: an argument is not plain data: {e}")))
}

fn exchange(w: &mut Worker, request: &serde_json::Value) -> std::io::Result<serde_json::Value> {
    let mut line = request.to_string();
    line.push('\n');
    w.stdin.write_all(line.as_bytes())?;
    w.stdin.flush()?;
    let mut reply = String::new();
    if w.stdout.read_line(&mut reply)? == 0 {
        return Err(std::io::Error::other("it exited"));
    }
    serde_json::from_str(&reply).map_err(std::io::Error::other)
}

/// The repository's collections directories (`collections/ansible_collections/<ns>/<coll>`),
/// beside the playbook or any directory searched for the task.
fn repo_collections(fr: &crate::lookup::Frame) -> Result<Vec<(String, RepoPath)>, Error> {
    let mut out: Vec<(String, RepoPath)> = Vec::new();
    let mut bases: Vec<RepoPath> = fr.search.clone();
    bases.push(RepoPath::root());
    for base in bases {
        for top in ["collections/ansible_collections", "ansible_collections"] {
            let Ok(top) = base.join(top) else { continue };
            let Ok(namespaces) = fr.source.list(&top) else {
                continue;
            };
            for ns in namespaces.iter().filter(|e| e.kind == SourceKind::Dir) {
                let Ok(ns_dir) = top.join(&ns.name) else {
                    continue;
                };
                let Ok(colls) = fr.source.list(&ns_dir) else {
                    continue;
                };
                for c in colls.iter().filter(|e| e.kind == SourceKind::Dir) {
                    let fq = format!("{}.{}", ns.name, c.name);
                    if !out.iter().any(|(n, _)| *n == fq) {
                        if let Ok(dir) = ns_dir.join(&c.name) {
                            out.push((fq, dir));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Copies `plugins/` and `meta/runtime.yml` of each repository collection under `dir`.
fn copy_collections(
    fr: &crate::lookup::Frame,
    colls: &[(String, RepoPath)],
    dir: &Path,
) -> Result<(), Error> {
    for (fq, src) in colls {
        let (ns, coll) = fq.split_once('.').unwrap_or((fq, ""));
        let dst = dir.join("ansible_collections").join(ns).join(coll);
        for sub in ["plugins", "meta/runtime.yml"] {
            if let Ok(p) = src.join(sub) {
                copy_tree(fr, &p, &dst.join(sub))?;
            }
        }
    }
    Ok(())
}

fn copy_tree(fr: &crate::lookup::Frame, src: &RepoPath, dst: &Path) -> Result<(), Error> {
    let io = |e: std::io::Error| err(format!("copying {src} for the Python plugins: {e}"));
    match fr.source.kind(src) {
        Ok(Some(SourceKind::Dir)) => {
            std::fs::create_dir_all(dst).map_err(io)?;
            let entries = fr.source.list(src).map_err(|e| err(e.to_string()))?;
            for e in entries {
                if let Ok(p) = src.join(&e.name) {
                    copy_tree(fr, &p, &dst.join(&e.name))?;
                }
            }
        }
        Ok(Some(SourceKind::File)) => {
            if let Ok(Some(bytes)) = fr.source.read(src) {
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                std::fs::write(dst, bytes).map_err(io)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Starts the Python process with the repository's collections copied to a directory and the
/// collection roots `roots` gives for it (the copy first, then the host's).
fn start(
    python: &Path,
    source: String,
    roots: impl FnOnce(&Path) -> Vec<PathBuf>,
) -> Result<Worker, Error> {
    let dir = tempfile::Builder::new()
        .prefix("gitops-agent-plugins.")
        .tempdir()
        .map_err(|e| err(format!("a directory for the Python plugins: {e}")))?;
    crate::lookup::with_frame(|fr| match fr {
        Some(fr) => copy_collections(fr, &repo_collections(fr)?, dir.path()),
        None => Ok(()),
    })?;
    let roots: Vec<String> = roots(dir.path())
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut child = Command::new(python)
        .arg("-c")
        .arg(WORKER_PY)
        .arg(serde_json::Value::from(roots).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            err(format!(
                "cannot start {} for collection plugins: {e} (set `ansible_python` to a Python \
                 3 with ansible-core)",
                python.display()
            ))
        })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(err("internal error: no pipes to the Python plugin process"));
    };
    Ok(Worker {
        child,
        stdin,
        stdout: BufReader::new(stdout),
        source,
        _dir: dir,
    })
}

/// The Python side: finds `ns.coll.name` as ansible-core does (the plugin file of that name,
/// else every plugin file of the collection's `plugins/<kind>/`; `meta/runtime.yml`
/// redirects), calls it, answers one JSON line per request.
const WORKER_PY: &str = r#"
import importlib, json, os, pkgutil, sys
for root in reversed(json.loads(sys.argv[1])):
    if os.path.isdir(os.path.join(root, 'ansible_collections')):
        sys.path.insert(0, root)
found = {}

def routing(ns, coll, kind, name):
    try:
        import yaml
    except ImportError:
        return None
    for root in sys.path:
        p = os.path.join(root, 'ansible_collections', ns, coll, 'meta', 'runtime.yml')
        if os.path.isfile(p):
            with open(p) as f:
                meta = yaml.safe_load(f) or {}
            r = ((meta.get('plugin_routing') or {}).get(kind) or {}).get(name) or {}
            if r.get('tombstone'):
                raise LookupError('%s.%s.%s was removed: %s' % (ns, coll, name, (r['tombstone'] or {}).get('warning_text', '')))
            return r.get('redirect')
    return None

def find(kind, fq, depth=0):
    key = (kind, fq)
    if key in found:
        return found[key]
    parts = fq.split('.')
    if len(parts) != 3 or depth > 5:
        raise LookupError('not a collection %s name: %s' % (kind, fq))
    ns, coll, name = parts
    redirect = routing(ns, coll, kind, name)
    if redirect:
        f = find(kind, redirect, depth + 1)
        found[key] = f
        return f
    pkg = 'ansible_collections.%s.%s.plugins.%s' % (ns, coll, kind)
    try:
        mod = importlib.import_module(pkg)
    except ImportError:
        raise LookupError('no %s plugins of the collection %s.%s on this host (looked in the repository collections, the collection paths and the Python path)' % (kind, ns, coll))
    names = [name] + sorted(m.name for m in pkgutil.iter_modules(mod.__path__) if m.name != name)
    problems = []
    cls = 'FilterModule' if kind == 'filter' else 'TestModule'
    for m in names:
        try:
            pm = importlib.import_module(pkg + '.' + m)
        except ModuleNotFoundError as e:
            if e.name == pkg + '.' + m:
                continue
            problems.append('%s: %s' % (m, e))
            continue
        except Exception as e:
            problems.append('%s: %s: %s' % (m, type(e).__name__, e))
            continue
        c = getattr(pm, cls, None)
        if c is None:
            continue
        fns = c().filters() if kind == 'filter' else c().tests()
        if name in fns:
            found[key] = fns[name]
            return fns[name]
    raise LookupError('the collection %s.%s has no %s named %s%s' % (ns, coll, kind, name, ('; plugins that did not load: ' + '; '.join(problems)) if problems else ''))

def plain(v):
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    raise TypeError('the result holds a %s, not plain data' % type(v).__name__)

for line in sys.stdin:
    try:
        req = json.loads(line)
        f = find(req['kind'], req['name'])
        out = json.dumps({'ok': f(*req['args'], **req['kwargs'])}, default=plain)
    except Exception as e:
        out = json.dumps({'error': '%s: %s' % (type(e).__name__, e)})
    sys.stdout.write(out + '\n')
    sys.stdout.flush()
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A Python 3 for the test: the test venv's, else the system's.
    fn python() -> Option<PathBuf> {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python3");
        [venv, PathBuf::from("/usr/bin/python3")]
            .into_iter()
            .find(|p| p.exists())
    }

    #[test]
    fn collection_filters_and_tests_run_in_python() {
        let Some(py) = python() else {
            eprintln!("no python3: skipped");
            return;
        };
        let root = tempfile::tempdir().unwrap();
        let plugins = root.path().join("ansible_collections/acme/tools/plugins");
        std::fs::create_dir_all(plugins.join("filter")).unwrap();
        std::fs::create_dir_all(plugins.join("test")).unwrap();
        std::fs::create_dir_all(root.path().join("ansible_collections/acme/tools/meta")).unwrap();
        // The filter lives in a file of another name, as debops' do.
        std::fs::write(
            plugins.join("filter/several.py"),
            "def kv(items, sep='='):\n    return sorted('%s%s%s' % (k, sep, v) for k, v in items.items())\n\
             def pair(a, b):\n    return (a, b)\n\
             class FilterModule:\n    def filters(self):\n        return {'kv': kv, 'pair': pair, 'bad': lambda x: object()}\n",
        )
        .unwrap();
        std::fs::write(
            plugins.join("test/odd.py"),
            "class TestModule:\n    def tests(self):\n        return {'odd': lambda n: n % 2 == 1}\n",
        )
        .unwrap();
        std::fs::write(
            root.path()
                .join("ansible_collections/acme/tools/meta/runtime.yml"),
            "plugin_routing:\n  filter:\n    old_kv:\n      redirect: acme.tools.kv\n",
        )
        .unwrap();
        let mut w = start(&py, "t".into(), |_| vec![root.path().to_path_buf()]).unwrap();
        let mut ask =
            |kind: &str, name: &str, args: serde_json::Value, kwargs: serde_json::Value| {
                exchange(
                &mut w,
                &serde_json::json!({"kind": kind, "name": name, "args": args, "kwargs": kwargs}),
            )
            .unwrap()
            };
        let r = ask(
            "filter",
            "acme.tools.kv",
            serde_json::json!([{"b": 2, "a": 1}]),
            serde_json::json!({"sep": ":"}),
        );
        assert_eq!(r["ok"], serde_json::json!(["a:1", "b:2"]), "{r}");
        let r = ask(
            "filter",
            "acme.tools.old_kv",
            serde_json::json!([{"a": 1}]),
            serde_json::json!({}),
        );
        assert_eq!(r["ok"], serde_json::json!(["a=1"]), "{r}");
        let r = ask(
            "filter",
            "acme.tools.pair",
            serde_json::json!([1, "x"]),
            serde_json::json!({}),
        );
        assert_eq!(r["ok"], serde_json::json!([1, "x"]), "{r}");
        let r = ask(
            "test",
            "acme.tools.odd",
            serde_json::json!([3]),
            serde_json::json!({}),
        );
        assert_eq!(r["ok"], serde_json::json!(true), "{r}");
        let r = ask(
            "filter",
            "acme.tools.bad",
            serde_json::json!([1]),
            serde_json::json!({}),
        );
        assert!(
            r["error"].as_str().unwrap().contains("not plain data"),
            "{r}"
        );
        let r = ask(
            "filter",
            "acme.tools.nothing",
            serde_json::json!([1]),
            serde_json::json!({}),
        );
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("has no filter named nothing"),
            "{r}"
        );
        let r = ask(
            "filter",
            "other.coll.x",
            serde_json::json!([1]),
            serde_json::json!({}),
        );
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("no filter plugins of the collection other.coll"),
            "{r}"
        );
        let _ = w.child.kill();
        let _ = w.child.wait();
    }

    #[test]
    fn without_python_configured_a_collection_filter_names_the_setting() {
        let t = crate::template::Templar::new();
        let e = t
            .render_str("{{ 1 | acme.tools.kv }}", &Value::from(()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("acme.tools") && e.contains("ansible_modules: auto"),
            "{e}"
        );
    }
}
