//! The module's output: its JSON result, cleaned as ansible-core's executor cleans it
//! (plugins/action/__init__.py `_execute_module`, executor/task_executor.py), and its `diff`
//! rendered as `--diff` shows it (plugins/callback/__init__.py `_get_diff`).

use indexmap::IndexMap;
use serde_json::{json, Value as Json};

/// What a module run came to.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleResult {
    /// The registered result (internal keys removed, `changed`/`failed` always present).
    pub data: IndexMap<String, Json>,
    pub changed: bool,
    /// The failure message.
    pub failed: Option<String>,
    /// The module skipped itself (check mode it does not support).
    pub skipped: bool,
    /// Unified diffs, one per `diff` entry that shows a difference.
    pub diff: Vec<String>,
    /// `warnings` and `deprecations` the module returned.
    pub warnings: Vec<String>,
}

/// Reads a module's output. Output without a JSON object is a failure with the module's
/// stderr (Ansible's "MODULE FAILURE").
pub fn parse(module: &str, stdout: &str, stderr: &str, exit: Option<i32>) -> ModuleResult {
    match json_object(stdout) {
        Some(data) => from_json(data),
        None => {
            let rc = exit.unwrap_or(-1);
            let msg = format!(
                "MODULE FAILURE: ansible module `{module}` returned no JSON result (exit {rc}){}",
                match stderr.trim() {
                    "" => String::new(),
                    e => format!(": {e}"),
                }
            );
            let mut data = IndexMap::new();
            data.insert("failed".into(), json!(true));
            data.insert("changed".into(), json!(false));
            data.insert("msg".into(), json!(msg));
            data.insert("module_stdout".into(), json!(stdout));
            data.insert("module_stderr".into(), json!(stderr));
            data.insert("rc".into(), json!(rc));
            ModuleResult {
                data,
                changed: false,
                failed: Some(msg),
                skipped: false,
                diff: Vec::new(),
                warnings: Vec::new(),
            }
        }
    }
}

/// The JSON object in a module's stdout: from the first line starting with `{` to the last
/// line ending with `}` (ansible's `_filter_non_json_lines`: noise before and after is dropped).
fn json_object(stdout: &str) -> Option<serde_json::Map<String, Json>> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines.iter().position(|l| l.trim_start().starts_with('{'))?;
    let end = lines.iter().rposition(|l| l.trim_end().ends_with('}'))?;
    if end < start {
        return None;
    }
    match serde_json::from_str::<Json>(&lines[start..=end].join("\n")) {
        Ok(Json::Object(m)) => Some(m),
        _ => None,
    }
}

fn from_json(obj: serde_json::Map<String, Json>) -> ModuleResult {
    let mut data: IndexMap<String, Json> = obj.into_iter().collect();
    let mut warnings = Vec::new();
    // Internal keys are not the module's to return (Ansible warns and removes them).
    let internal: Vec<String> = data
        .keys()
        .filter(|k| k.starts_with("_ansible_") && *k != "_ansible_no_log")
        .cloned()
        .collect();
    for k in internal {
        data.shift_remove(&k);
        warnings.push(format!(
            "Removed unexpected internal key in module return: {k}"
        ));
    }
    data.shift_remove("_ansible_no_log");
    for key in ["warnings", "deprecations"] {
        match data.get(key) {
            Some(Json::Array(items)) if !items.is_empty() => {
                for w in items {
                    warnings.push(warning_text(key, w));
                }
            }
            Some(Json::Null) | Some(Json::Array(_)) | Some(Json::Bool(false)) => {
                data.shift_remove(key);
            }
            _ => {}
        }
    }
    // A `results` that is not a list would be taken for a loop's (Ansible renames it).
    if data
        .get("results")
        .is_some_and(|r| !matches!(r, Json::Array(_)))
    {
        if let Some(r) = data.shift_remove("results") {
            data.insert("ansible_module_results".into(), r);
            warnings.push(
                "Found internal 'results' key in module return, renamed to \
                 'ansible_module_results'."
                    .into(),
            );
        }
    }
    for (stream, lines) in [("stdout", "stdout_lines"), ("stderr", "stderr_lines")] {
        if data.contains_key(stream) && !data.contains_key(lines) {
            let text = data.get(stream).and_then(|s| s.as_str()).unwrap_or("");
            let split: Vec<Json> = text.lines().map(|l| json!(l)).collect();
            data.insert(lines.into(), Json::Array(split));
        }
    }
    let truthy = |v: Option<&Json>| match v {
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => matches!(
            s.to_ascii_lowercase().as_str(),
            "yes" | "true" | "on" | "1" | "y" | "t"
        ),
        Some(Json::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    };
    // `failed` missing: an `rc` other than 0 fails (task_executor.py).
    let failed = match data.get("failed") {
        Some(f) => truthy(Some(f)),
        None => data
            .get("rc")
            .is_some_and(|rc| !(rc == &json!(0) || rc == &json!("0"))),
    };
    let changed = truthy(data.get("changed"));
    let skipped = truthy(data.get("skipped"));
    data.insert("failed".into(), json!(failed));
    data.insert("changed".into(), json!(changed));
    let failed = failed.then(|| {
        data.get("msg")
            .map(|m| match m {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "MODULE FAILURE (no msg)".to_string())
    });
    let diff = match data.get("diff") {
        Some(Json::Array(items)) => items.iter().filter_map(render_diff).collect(),
        Some(d @ Json::Object(_)) => render_diff(d).into_iter().collect(),
        _ => Vec::new(),
    };
    ModuleResult {
        data,
        changed,
        failed,
        skipped,
        diff,
        warnings,
    }
}

fn warning_text(key: &str, w: &Json) -> String {
    let text = match w {
        Json::String(s) => s.clone(),
        Json::Object(m) => m
            .get("msg")
            .or_else(|| m.get("message"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| w.to_string()),
        other => other.to_string(),
    };
    if key == "deprecations" {
        format!("[DEPRECATION WARNING]: {text}")
    } else {
        text
    }
}

/// One `diff` entry as `--diff` shows it: `prepared` text as is, else a unified diff of
/// `before` and `after` (non-text values as sorted, indented JSON); `None` when they are equal.
pub fn render_diff(d: &Json) -> Option<String> {
    if let Some(p) = d.get("prepared").and_then(|p| p.as_str()) {
        return Some(p.to_string());
    }
    let (before, after) = (d.get("before")?, d.get("after")?);
    let header = |key: &str, default: &str| match d.get(key).and_then(|h| h.as_str()) {
        Some(h) => format!("{default}: {h}"),
        None => default.to_string(),
    };
    let (b, a) = (as_text(before), as_text(after));
    if b == a {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(&b, &a)
            .unified_diff()
            .header(
                &header("before_header", "before"),
                &header("after_header", "after"),
            )
            .to_string(),
    )
}

fn as_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => {
            // json.dumps(sort_keys=True, indent=4), as Ansible's callback.
            let sorted = sort_keys(other);
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            let _ = serde::Serialize::serialize(&sorted, &mut ser);
            String::from_utf8_lossy(&buf).into_owned() + "\n"
        }
    }
}

fn sort_keys(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sort_keys(&m[k]));
            }
            Json::Object(out)
        }
        Json::Array(a) => Json::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_with_noise_around_it_parses() {
        let out = "some banner\n{\"changed\": true, \"msg\": \"line added\"}\ntrailing\n";
        let r = parse("lineinfile", out, "", Some(0));
        assert!(r.changed);
        assert_eq!(r.failed, None);
        assert_eq!(r.data["msg"], json!("line added"));
        assert_eq!(r.data["failed"], json!(false));
    }

    #[test]
    fn no_json_is_a_failure_with_stderr() {
        let r = parse("x", "", "Traceback: boom\n", Some(1));
        let msg = r.failed.unwrap();
        assert!(
            msg.contains("MODULE FAILURE") && msg.contains("boom") && msg.contains("exit 1"),
            "{msg}"
        );
        assert_eq!(r.data["failed"], json!(true));
    }

    #[test]
    fn failed_json_keeps_its_message_and_rc_fails_without_failed() {
        let r = parse(
            "x",
            "{\"failed\": true, \"msg\": \"no such file\"}",
            "",
            Some(1),
        );
        assert_eq!(r.failed.as_deref(), Some("no such file"));
        let r = parse("x", "{\"rc\": 2, \"msg\": \"bad\"}", "", Some(0));
        assert_eq!(r.failed.as_deref(), Some("bad"));
        let r = parse("x", "{\"rc\": 0}", "", Some(0));
        assert_eq!(r.failed, None);
        assert!(!r.changed);
    }

    #[test]
    fn skipped_check_mode_and_internal_keys() {
        let r = parse(
            "tempfile",
            "{\"skipped\": true, \"msg\": \"remote module (tempfile) does not support check mode\", \"_ansible_parsed\": true, \"warnings\": []}",
            "",
            Some(0),
        );
        assert!(r.skipped);
        assert!(!r.data.contains_key("_ansible_parsed"));
        assert!(!r.data.contains_key("warnings"));
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn stdout_lines_and_warnings() {
        let r = parse(
            "command",
            "{\"stdout\": \"a\\nb\", \"changed\": true, \"warnings\": [\"careful\"], \"deprecations\": [{\"msg\": \"old\"}]}",
            "",
            Some(0),
        );
        assert_eq!(r.data["stdout_lines"], json!(["a", "b"]));
        assert_eq!(
            r.warnings,
            vec![
                "careful".to_string(),
                "[DEPRECATION WARNING]: old".to_string()
            ]
        );
    }

    #[test]
    fn diffs_render_text_and_json() {
        let r = parse(
            "lineinfile",
            r#"{"changed": true, "diff": [{"before": "", "after": "a\n", "before_header": "/x (content)", "after_header": "/x (content)"}, {"before_header": "/x (file attributes)", "after_header": "/x (file attributes)"}]}"#,
            "",
            Some(0),
        );
        assert_eq!(r.diff.len(), 1);
        assert!(
            r.diff[0].contains("--- before: /x (content)"),
            "{}",
            r.diff[0]
        );
        assert!(r.diff[0].contains("+a"), "{}", r.diff[0]);
        let d = render_diff(&json!({"before": {"state": "absent"}, "after": {"state": "file"}}))
            .unwrap();
        assert!(
            d.contains("-    \"state\": \"absent\"") && d.contains("+    \"state\": \"file\""),
            "{d}"
        );
        assert_eq!(
            render_diff(&json!({"before": "same", "after": "same"})),
            None
        );
        assert_eq!(render_diff(&json!({"prepared": "p"})).as_deref(), Some("p"));
    }

    #[test]
    fn a_results_key_that_is_not_a_list_is_renamed() {
        let r = parse("x", "{\"results\": {\"a\": 1}}", "", Some(0));
        assert!(r.data.contains_key("ansible_module_results"));
        assert!(!r.data.contains_key("results"));
    }
}
