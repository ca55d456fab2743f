use super::*;
use crate::vars::map_value;

fn render(expr: &str) -> Result<Value, String> {
    let t = Templar::new();
    let vars = map_value([
        (
            "d",
            map_value([("a", Value::from(1)), ("b", Value::from(2))]),
        ),
        ("l", Value::from(vec![Value::from("x"), Value::from("y")])),
    ]);
    t.render_str(expr, &vars).map_err(|e| e.to_string())
}

#[test]
fn lookup_joins_strings_and_query_keeps_lists() {
    assert_eq!(
        render("{{ lookup('items', l) }}").unwrap().as_str(),
        Some("x,y")
    );
    assert_eq!(
        render("{{ query('items', l) | length }}").unwrap(),
        Value::from(2)
    );
    assert_eq!(render("{{ q('list', 'a') }}").unwrap().to_string(), "['a']");
    assert_eq!(
        render("{{ lookup('list', 'a') }}").unwrap().as_str(),
        Some("a")
    );
    assert_eq!(
        render("{{ lookup('items', l, wantlist=True) | length }}").unwrap(),
        Value::from(2)
    );
}

#[test]
fn unknown_lookup_is_an_error_naming_it() {
    let e = render("{{ lookup('nope', 1) }}").unwrap_err();
    assert!(e.contains("'nope'"), "{e}");
}

#[test]
fn errors_ignore_gives_none_and_unknown_kwargs_fail() {
    assert_eq!(
        render("{{ lookup('dict', 1, errors='ignore') is none }}").unwrap(),
        Value::from(true)
    );
    assert!(render("{{ lookup('dict', 1) }}").is_err());
    let e = render("{{ lookup('items', l, bogus=1) }}").unwrap_err();
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn dict_nested_together_indexed() {
    assert_eq!(
        render("{{ query('dict', d) | map(attribute='key') | join(',') }}")
            .unwrap()
            .as_str(),
        Some("a,b")
    );
    assert_eq!(
        render("{{ query('nested', [1, 2], ['a', 'b']) }}")
            .unwrap()
            .to_string(),
        "[[1, 'a'], [1, 'b'], [2, 'a'], [2, 'b']]"
    );
    assert_eq!(
        render("{{ query('together', [1, 2], ['a']) }}")
            .unwrap()
            .to_string(),
        "[[1, 'a'], [2, None]]"
    );
    assert_eq!(
        render("{{ query('indexed_items', ['a', 'b']) }}")
            .unwrap()
            .to_string(),
        "[[0, 'a'], [1, 'b']]"
    );
}

#[test]
fn subelements_pops_the_key_and_skips_missing() {
    let t = Templar::new();
    let users = Value::from(vec![
        map_value([
            ("name", Value::from("a")),
            (
                "keys",
                Value::from(vec![Value::from("k1"), Value::from("k2")]),
            ),
        ]),
        map_value([("name", Value::from("b"))]),
    ]);
    let vars = map_value([("users", users)]);
    let out = t
        .render_str(
            "{{ query('subelements', users, 'keys', {'skip_missing': True}) }}",
            &vars,
        )
        .unwrap();
    assert_eq!(
        out.to_string(),
        "[[{'name': 'a'}, 'k1'], [{'name': 'a'}, 'k2']]"
    );
    assert!(t
        .render_str("{{ query('subelements', users, 'keys') }}", &vars)
        .is_err());
}

#[test]
fn sequence_forms() {
    use super::sequence::sequence_of;
    assert_eq!(sequence_of("5").unwrap(), ["1", "2", "3", "4", "5"]);
    assert_eq!(sequence_of("2-10/2").unwrap(), ["2", "4", "6", "8", "10"]);
    assert_eq!(
        sequence_of("4:host%02d").unwrap(),
        ["host01", "host02", "host03", "host04"]
    );
    assert_eq!(
        sequence_of("start=5 end=11 stride=2 format=0x%02x").unwrap(),
        ["0x05", "0x07", "0x09", "0x0b"]
    );
    assert_eq!(
        sequence_of("start=0 count=3 stride=2").unwrap(),
        ["0", "2", "4"]
    );
    assert_eq!(sequence_of("count=0").unwrap(), Vec::<String>::new());
    assert!(sequence_of("start=0x0f00 count=4").is_err());
    assert!(sequence_of("start=5 end=1").is_err());
    assert!(sequence_of("bogus=1").is_err());
}

#[test]
fn globs_as_fnmatch() {
    use super::files::glob_matches;
    assert!(glob_matches("*.conf", "a.conf"));
    assert!(!glob_matches("*.conf", "a.conf.bak"));
    assert!(glob_matches("a?[0-9].txt", "ab1.txt"));
    assert!(glob_matches("[!x]*", "abc"));
    assert!(!glob_matches("[!x]*", "xbc"));
}

#[test]
fn passwords_have_the_length_and_chars_asked_and_a_seed_repeats() {
    use super::password::test_password;
    let p = test_password(12, "digits", None);
    assert_eq!(p.len(), 12);
    assert!(p.chars().all(|c| c.is_ascii_digit()), "{p}");
    assert_eq!(
        test_password(8, "ascii_letters", Some("s")),
        test_password(8, "ascii_letters", Some("s"))
    );
    assert_ne!(
        test_password(16, "ascii_letters", None),
        test_password(16, "ascii_letters", None)
    );
}

#[test]
fn file_lookups_need_a_task() {
    let e = render("{{ lookup('file', 'x') }}").unwrap_err();
    assert!(e.contains("only available while a task runs"), "{e}");
}

#[test]
fn collection_names_flattened_and_cartesian() {
    assert_eq!(
        render("{{ lookup('ansible.builtin.items', l) }}")
            .unwrap()
            .as_str(),
        Some("x,y")
    );
    assert_eq!(
        render("{{ query('community.general.flattened', [1, [2, [3, [4]]]], [[5]]) }}")
            .unwrap()
            .to_string(),
        "[1, 2, 3, 4, 5]"
    );
    assert_eq!(
        render("{{ query('flattened', [1, 'None', 2]) }}")
            .unwrap()
            .to_string(),
        "[1]"
    );
    assert_eq!(
        render("{{ query('cartesian', ['a', 'b'], [1], 'z') }}")
            .unwrap()
            .to_string(),
        "[['a', 1, 'z'], ['b', 1, 'z']]"
    );
    assert!(render("{{ lookup('ansible.builtin.flattened', [1]) }}").is_err());
}

#[test]
fn an_unknown_option_fails_even_when_errors_are_ignored() {
    let e = render("{{ lookup('dict', 1, errors='ignore', bogus=1) }}").unwrap_err();
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn list_lookups_take_concatenated_lists() {
    // `a + b` is an iterable object in minijinja, not a plain sequence (DebOps writes
    // `q("flattened", (base_packages + packages))`).
    assert_eq!(
        render("{{ q('flattened', (l + ['z'])) }}")
            .unwrap()
            .to_string(),
        "['x', 'y', 'z']"
    );
}
