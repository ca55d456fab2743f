//! Ansible's filters (and Python string/dict methods) for minijinja, by kind in the submodules;
//! this file registers them and holds the helpers they share.

mod anstext;
mod collections;
mod convert;
mod data;
pub(crate) mod encoding;
mod hashing;
mod paths;
mod pyformat;
mod pymethods;
mod random;
pub(crate) mod regex;
mod strings;
mod text;

use indexmap::IndexMap;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

use super::pyrepr::{py_str, py_type};

pub(crate) use self::regex::{compile_regex, forget_regexes, python_subn};
pub use convert::to_bool;
pub(crate) use convert::MANDATORY_MARKER;
pub(crate) use encoding::json_dumps;
pub(crate) use pymethods::call_py_method;

pub(crate) fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn undefined_err(what: &str) -> Error {
    Error::new(
        ErrorKind::UndefinedError,
        format!("an undefined value was passed to `{what}`"),
    )
}

fn check_defined(v: &Value, what: &str) -> Result<(), Error> {
    if v.is_undefined() {
        Err(undefined_err(what))
    } else {
        Ok(())
    }
}

fn items(v: &Value) -> Result<Vec<Value>, Error> {
    Ok(v.try_iter()?.collect())
}

fn map_of(pairs: IndexMap<Value, Value>) -> Value {
    Value::from(pairs)
}

fn to_map(v: &Value) -> Result<IndexMap<Value, Value>, Error> {
    if v.kind() != ValueKind::Map {
        return Err(err(format!("expected a dictionary, got {}", py_type(v))));
    }
    let mut m = IndexMap::new();
    for k in v.try_iter()? {
        let val = v.get_item(&k)?;
        m.insert(k, val);
    }
    Ok(m)
}

/// Python-style parameters: positional `args` in `names` order, or by keyword; unknown
/// keywords and too many arguments are errors.
pub(super) struct Params {
    values: Vec<Option<Value>>,
}

impl Params {
    pub(super) fn new(
        what: &str,
        names: &[&str],
        args: &[Value],
        kwargs: &Kwargs,
    ) -> Result<Params, Error> {
        if args.len() > names.len() {
            return Err(err(format!(
                "{what}: takes at most {} arguments ({} given)",
                names.len(),
                args.len()
            )));
        }
        let mut values: Vec<Option<Value>> = names.iter().map(|_| None).collect();
        for (i, a) in args.iter().enumerate() {
            values[i] = Some(a.clone());
        }
        for (i, n) in names.iter().enumerate() {
            // `has` then `get::<Value>`: a keyword given as `none` is given (None), not absent
            if kwargs.has(n) {
                let v = kwargs.get::<Value>(n)?;
                if values[i].is_some() {
                    return Err(err(format!(
                        "{what}: got multiple values for argument '{n}'"
                    )));
                }
                values[i] = Some(v);
            }
        }
        kwargs.assert_all_used()?;
        Ok(Params { values })
    }

    pub(super) fn int(&self, i: usize, dflt: i64) -> Result<i64, Error> {
        match &self.values[i] {
            None => Ok(dflt),
            Some(v) => {
                i64::try_from(v.clone()).map_err(|_| err(format!("expected an integer, got {v}")))
            }
        }
    }

    pub(super) fn opt_int(&self, i: usize) -> Result<Option<i64>, Error> {
        match &self.values[i] {
            None => Ok(None),
            Some(v) if v.is_none() => Ok(None),
            Some(_) => self.int(i, 0).map(Some),
        }
    }

    pub(super) fn bool(&self, i: usize, dflt: bool) -> bool {
        self.values[i].as_ref().map_or(dflt, |v| v.is_true())
    }

    pub(super) fn str(&self, i: usize) -> Option<String> {
        self.values[i].as_ref().filter(|v| !v.is_none()).map(py_str)
    }

    pub(super) fn value(&self, i: usize) -> Option<&Value> {
        self.values[i].as_ref()
    }
}

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("default", convert::default);
    env.add_filter("d", convert::default);
    env.add_filter("bool", convert::bool_filter);
    env.add_filter("int", convert::int_filter);
    env.add_filter("float", convert::float_filter);
    env.add_filter("string", convert::string_filter);
    env.add_filter("join", strings::join);
    env.add_filter("replace", strings::replace);
    env.add_filter("regex_replace", regex::regex_replace);
    env.add_filter("regex_search", regex::regex_search);
    env.add_filter("regex_findall", regex::regex_findall);
    env.add_filter("regex_escape", regex::regex_escape);
    env.add_filter("to_json", encoding::to_json);
    env.add_filter("to_nice_json", encoding::to_nice_json);
    env.add_filter("to_yaml", encoding::to_yaml);
    env.add_filter("to_nice_yaml", encoding::to_nice_yaml);
    env.add_filter("from_json", encoding::from_json);
    env.add_filter("from_yaml", encoding::from_yaml);
    env.add_filter("b64encode", encoding::b64encode);
    env.add_filter("b64decode", encoding::b64decode);
    env.add_filter("basename", strings::basename);
    env.add_filter("dirname", strings::dirname);
    env.add_filter("combine", collections::combine);
    env.add_filter("dict2items", collections::dict2items);
    env.add_filter("items2dict", collections::items2dict);
    env.add_filter("mandatory", convert::mandatory);
    env.add_filter("ternary", convert::ternary);
    env.add_filter("flatten", collections::flatten);
    env.add_filter("quote", strings::quote);
    env.add_filter("round", convert::round);
    env.add_filter("type_debug", convert::type_debug);
    env.add_filter("version_compare", super::tests_impl::version_test);
    env.add_filter("union", collections::union);
    env.add_filter("intersect", collections::intersect);
    env.add_filter("difference", collections::difference);
    env.add_filter("symmetric_difference", collections::symmetric_difference);
    register_jinja_builtins(env);
    register_ansible_filters(env);
}

/// ansible-core's filters beyond the basics above (ansible.builtin: core, mathstuff, urlsplit).
fn register_ansible_filters(env: &mut Environment<'static>) {
    env.add_filter("hash", hashing::hash);
    env.add_filter("checksum", hashing::checksum);
    env.add_filter("sha1", hashing::checksum);
    env.add_filter("md5", hashing::md5);
    env.add_filter("password_hash", hashing::password_hash);
    env.add_filter("to_uuid", hashing::to_uuid);
    env.add_filter("splitext", paths::splitext);
    env.add_filter("normpath", paths::normpath);
    env.add_filter("path_join", paths::path_join);
    env.add_filter("commonpath", paths::commonpath);
    env.add_filter("relpath", paths::relpath);
    env.add_filter("realpath", paths::realpath);
    env.add_filter("expanduser", paths::expanduser);
    env.add_filter("expandvars", paths::expandvars);
    env.add_filter("product", data::product);
    env.add_filter("permutations", data::permutations);
    env.add_filter("combinations", data::combinations);
    env.add_filter("zip", data::zip);
    env.add_filter("zip_longest", data::zip_longest);
    env.add_filter("subelements", data::subelements);
    env.add_filter("extract", data::extract);
    env.add_filter("rekey_on_member", data::rekey_on_member);
    env.add_filter("log", data::log);
    env.add_filter("pow", data::pow);
    env.add_filter("root", data::root);
    env.add_filter("human_readable", data::human_readable);
    env.add_filter("human_to_bytes", data::human_to_bytes);
    env.add_filter("comment", anstext::comment);
    env.add_filter("strftime", anstext::strftime);
    env.add_filter("urlsplit", anstext::urlsplit);
}

/// Jinja2 builtins minijinja lacks or renders differently from Jinja2 3.1.
fn register_jinja_builtins(env: &mut Environment<'static>) {
    // minijinja extras Jinja2 lacks: ansible-core refuses them, so does the agent
    env.remove_test("startingwith");
    env.remove_test("endingwith");
    env.add_filter("truncate", text::truncate);
    env.add_filter("wordcount", text::wordcount);
    env.add_filter("center", text::center);
    env.add_filter("indent", text::indent);
    env.add_filter("wordwrap", text::wordwrap);
    env.add_filter("striptags", text::striptags);
    env.add_filter("filesizeformat", text::filesizeformat);
    env.add_filter("xmlattr", text::xmlattr);
    env.add_filter("urlencode", text::urlencode);
    env.add_filter("escape", text::escape);
    env.add_filter("e", text::escape);
    env.add_filter("forceescape", text::forceescape);
    env.add_filter("format", pyformat::format);
    env.add_filter("random", random::random);
    env.add_filter("shuffle", random::shuffle);
}
