use super::*;

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

const INI: &str = r#"
# comment
lonely x=1
[web]
web[01:03].example.com http_port=8080 flag=True name='quoted' zero=01 f=1.5
[db]
db1 # comment
[prod:children]
web
db
[prod:vars]
env=production
ansible_group_priority=5
[web:vars]
role = frontend
"#;

#[test]
fn ini_groups_ranges_and_values() {
    let inv = Inventory::parse("inventory.ini", INI).unwrap();
    assert_eq!(
        names(&inv.hosts_of("web")),
        [
            "web01.example.com",
            "web02.example.com",
            "web03.example.com"
        ]
    );
    assert_eq!(names(&inv.hosts_of("ungrouped")), ["lonely"]);
    assert_eq!(inv.hosts_of("prod").len(), 4);
    assert_eq!(inv.hosts_of("all").len(), 5);
    let hv = &inv.hosts["web02.example.com"];
    assert_eq!(hv["http_port"], Value::from(8080));
    assert_eq!(hv["flag"], Value::from(true));
    assert_eq!(hv["name"], Value::from("quoted"));
    assert_eq!(hv["zero"], Value::from("01"));
    assert_eq!(hv["f"], Value::from(1.5));
    assert_eq!(inv.groups["web"].vars["role"], Value::from("frontend"));
    assert_eq!(
        names(&inv.group_names("web01.example.com")),
        ["prod", "web"]
    );
    assert_eq!(names(&inv.group_names("lonely")), ["ungrouped"]);
    // depth first (prod 1, web 2), whatever the priority.
    assert_eq!(names(&inv.var_groups("web01.example.com")), ["prod", "web"]);
}

#[test]
fn group_order_is_depth_then_priority_then_name() {
    let inv = Inventory::parse(
        "i.ini",
        "[b]\nh\n[a]\nh\n[c]\nh\n[a:vars]\nansible_group_priority=3\n",
    )
    .unwrap();
    assert_eq!(names(&inv.var_groups("h")), ["b", "c", "a"]);
}

#[test]
fn ini_errors_name_the_line() {
    for (text, line, want) in [
        (
            "[web]\nh1 novalue\n",
            2,
            "Expected key=value host variable assignment",
        ),
        ("[web:nope]\n", 1, "unknown type: nope"),
        ("[g:vars]\nx=1\n", 1, "not valid for undefined group: g"),
        (
            "[p:children]\nmissing\n",
            2,
            "includes undefined group: missing",
        ),
        ("[g]\nweb[3:1]\n", 2, "begin <= end"),
        ("[g]\nh x='unclosed\n", 2, "No closing quotation"),
    ] {
        let e = Inventory::parse("inv.ini", text).unwrap_err().to_string();
        assert!(e.starts_with(&format!("inv.ini:{line}: ")), "{text:?}: {e}");
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

const YAML: &str = r#"
all:
  vars:
    everyone: 1
  hosts:
    localhost:
  children:
    web:
      hosts:
        web[1:2]:
          port: 80
      vars:
        tier: front
    prod:
      children:
        web:
"#;

#[test]
fn yaml_inventory() {
    let inv = Inventory::parse("hosts.yml", YAML).unwrap();
    assert_eq!(names(&inv.hosts_of("web")), ["web1", "web2"]);
    assert_eq!(names(&inv.hosts_of("prod")), ["web1", "web2"]);
    assert_eq!(inv.hosts["web2"]["port"], Value::from(80));
    assert_eq!(inv.groups["all"].vars["everyone"], Value::from(1));
    assert_eq!(names(&inv.hosts_of("ungrouped")), ["localhost"]);
    assert_eq!(names(&inv.var_groups("web1")), ["prod", "web"]);
    let e = Inventory::parse("hosts.yml", "all:\n  host:\n    x:\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("hosts.yml:2: unknown key `host`"), "{e}");
    let e = Inventory::parse("hosts.yml", "all: [x\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("hosts.yml:"), "{e}");
}

#[test]
fn implicit_localhost_list() {
    let h = InventoryHost::implicit("localhost");
    assert_eq!(names(&h.inventory.group_names("localhost")), ["ungrouped"]);
    for (p, want) in [
        ("all", true),
        ("localhost", true),
        ("127.0.0.1", true),
        ("*", true),
        ("ungrouped", true),
        ("web", false),
        ("otherhost", false),
        ("all:!localhost", false),
    ] {
        assert_eq!(h.matches(&[p.to_string()]), Ok(want), "{p}");
    }
}

#[test]
fn patterns() {
    let inv = Inventory::parse("inventory.ini", INI).unwrap();
    let me = "web02.example.com";
    let m = |p: &[&str]| {
        pattern::matches(
            &inv,
            me,
            &p.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    for (p, want) in [
        (&["web"][..], true),
        (&["db"], false),
        (&["db", "web"], true),
        (&["db,web"], true),
        (&["prod:&web"], true),
        (&["prod:&db"], false),
        (&["prod:!web"], false),
        (&["!db"], true),
        (&["web*"], true),
        (&["*.example.com"], true),
        (&["~web0[2-3]"], true),
        (&["~web01"], false),
        (&["web[1]"], true),
        (&["web[0]"], false),
        (&["web[0:1]"], true),
        (&["web[-1]"], false),
        (&["all"], true),
        (&["web02.example.com"], true),
    ] {
        assert_eq!(m(p), Ok(want), "{p:?}");
    }
    // No localhost in this inventory: Ansible would run the play as an implicit second host.
    assert!(m(&["localhost"])
        .unwrap_err()
        .contains("implicit `localhost`"));
    assert!(m(&["~("])
        .unwrap_err()
        .contains("Invalid host list pattern"));
}

#[test]
fn finding_this_host() {
    let inv = Inventory::parse("inventory.ini", INI).unwrap();
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        inv.find_host(&n(&["db1.example.com", "db1", "localhost"])),
        Ok("db1".to_string())
    );
    assert!(inv
        .find_host(&n(&["nothere", "localhost"]))
        .unwrap_err()
        .contains("not in the inventory"));
    assert!(inv
        .find_host(&n(&["db1", "lonely"]))
        .unwrap_err()
        .contains("--host-name"));
}

#[test]
fn ranges() {
    assert_eq!(
        range::expand("a[1:3:2]-[x:y]").unwrap(),
        ["a1-x", "a1-y", "a3-x", "a3-y"]
    );
    assert_eq!(range::expand("n[08:10]").unwrap(), ["n08", "n09", "n10"]);
    assert!(range::expand("n[1:]").is_err());
    assert!(range::expand("n[01:100]").is_err());
}
