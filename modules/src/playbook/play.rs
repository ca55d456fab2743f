//! Plays and roles: their keys, the roles they use, the handlers their tasks notify.

use std::sync::Arc;

use super::*;
use crate::error::{LoadError, Location};
use crate::yaml::Node;

mod keys;

impl Loader<'_> {
    pub(super) fn play(&mut self, node: &Node, file: &Arc<str>) -> Option<Play> {
        let loc = Location::new(file.clone(), node.line);
        let Some(entries) = node.as_map() else {
            self.errors
                .push(LoadError::at(loc, "a play must be a mapping"));
            return None;
        };
        for e in entries {
            if !PLAY_KEYS.contains(&e.key.as_str()) && !BASE_KEYS.contains(&e.key.as_str()) {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!("unsupported play keyword `{}`", e.key),
                    )
                    .with_key(e.key.clone()),
                );
            }
        }
        let hosts = match node.get("hosts") {
            Some(h) => self.string_list(h, file, "hosts"),
            None => {
                self.errors
                    .push(LoadError::at(loc.clone(), "a play needs `hosts`").with_key("hosts"));
                Vec::new()
            }
        };
        let runs_here = self.runs_here(&hosts, node.get("hosts"), file);
        let mut common = self.common(entries, file);
        // Play variables are their own layer (below role vars), not a task-level one.
        common.vars = RawVars::new();
        self.play_keywords(node, file);
        let saved_scope = self.push_scope(entries, file);
        let force_handlers = node
            .get("force_handlers")
            .map(|n| self.bool_node(n, file, "force_handlers"))
            .unwrap_or(false);
        let name = node
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| hosts.join(","));
        let gather_facts = node
            .get("gather_facts")
            .map(|n| self.bool_node(n, file, "gather_facts"))
            .unwrap_or(true);
        let vars = node
            .get("vars")
            .map(|n| self.vars_map(n, file))
            .unwrap_or_default();
        let mut vars_files = RawVars::new();
        if let Some(vf) = node.get("vars_files") {
            for name in self.string_list(vf, file, "vars_files") {
                let at = Location::new(file.clone(), vf.line);
                if Templar::is_template(&name) {
                    self.errors.push(
                        LoadError::at(at, "templated `vars_files` names are not supported")
                            .with_key("vars_files"),
                    );
                    continue;
                }
                match self.base.join(&name) {
                    Ok(p) => {
                        let vars = self.vars_file(&p, Some(&at));
                        vars_files.extend(vars);
                    }
                    Err(e) => self
                        .errors
                        .push(LoadError::at(at, e.to_string()).with_key("vars_files")),
                }
            }
        }
        let tags = node
            .get("tags")
            .map(|t| self.string_list(t, file, "tags"))
            .unwrap_or_default();
        let mut roles = Vec::new();
        if let Some(r) = node.get("roles") {
            match r.as_seq() {
                Some(items) => {
                    for item in items {
                        if let Some(role) = self.role_ref(item, file) {
                            roles.push(role);
                        }
                    }
                }
                None => self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), r.line),
                        "`roles` must be a list",
                    )
                    .with_key("roles"),
                ),
            }
        }
        let pre_tasks = self.task_list_key(node, "pre_tasks", file, None, false);
        let mut tasks: Vec<Item> = Vec::new();
        let mut handlers: Vec<Item> = Vec::new();
        // Each role after its dependencies; a role's handlers once per play.
        let mut handler_keys: Vec<String> = Vec::new();
        for (role, extra) in &roles {
            tasks.push(role_item(role, extra, &loc));
            role_handlers(role, extra, &mut handler_keys, &mut handlers);
        }
        tasks.extend(self.task_list_key(node, "tasks", file, None, false));
        let post_tasks = self.task_list_key(node, "post_tasks", file, None, false);
        handlers.extend(self.task_list_key(node, "handlers", file, None, true));
        // A role brought in by `import_role` adds its handlers to the play (statically, as
        // ansible-core's IncludeRole.get_block_list does); before, a notify that check_notify
        // accepted found no handler when it ran.
        let mut imported: Vec<(Arc<Role>, Common)> = Vec::new();
        for section in [&pre_tasks, &tasks, &post_tasks] {
            visit_tasks(section, &mut |t| {
                if let Action::IncludeRole {
                    role, import: true, ..
                } = &t.action
                {
                    imported.push((role.clone(), t.common.clone()));
                }
            });
        }
        for (role, c) in &imported {
            role_handlers(role, c, &mut handler_keys, &mut handlers);
        }
        self.scope = saved_scope;
        self.check_notify(&[&pre_tasks, &tasks, &post_tasks], &handlers);
        Some(Play {
            name,
            hosts,
            runs_here,
            gather_facts,
            common,
            force_handlers,
            vars,
            vars_files,
            roles: roles_with_dependencies(roles.iter().map(|(r, _)| r)),
            pre_tasks,
            tasks,
            post_tasks,
            handlers,
            tags,
            when: Vec::new(),
            location: loc,
        })
    }

    /// Every `notify` names a handler (by name, `role : name` or `listen` topic) of the play or
    /// of a role it includes; Ansible fails the run when one is missing, we refuse it up front.
    pub(super) fn check_notify(&mut self, sections: &[&Vec<Item>], handlers: &[Item]) {
        fn walk<'i>(items: &'i [Item], out: &mut Vec<&'i Arc<Task>>) {
            visit_tasks(items, &mut |t| out.push(t));
        }
        let mut tasks = Vec::new();
        for s in sections {
            walk(s, &mut tasks);
        }
        // The handlers that can be notified: tasks under `handlers:`, through static imports;
        // not the tasks inside an `include_tasks` (only the include itself, as in Ansible).
        fn notifiable<'i>(items: &'i [Item], out: &mut Vec<&'i Arc<Task>>) {
            for item in items {
                match item {
                    Item::Task(t) => match &t.action {
                        Action::IncludeTasks {
                            preloaded: Some(inner),
                            import: true,
                            ..
                        } => notifiable(inner, out),
                        _ => out.push(t),
                    },
                    Item::Block(b) => {
                        notifiable(&b.block, out);
                        notifiable(&b.rescue, out);
                        notifiable(&b.always, out);
                    }
                }
            }
        }
        let mut handler_tasks = Vec::new();
        notifiable(handlers, &mut handler_tasks);
        let mut names: Vec<String> = Vec::new();
        let mut add = |t: &Task| {
            if let Some(n) = &t.name {
                names.push(n.clone());
                if let Some(r) = &t.role {
                    names.push(format!("{} : {n}", r.name));
                }
            }
            names.extend(t.listen.iter().cloned());
        };
        for t in &handler_tasks {
            add(t);
        }
        for t in &tasks {
            if let Action::IncludeRole { role, .. } = &t.action {
                let mut hs = Vec::new();
                walk(&role.handlers, &mut hs);
                for h in hs {
                    add(h);
                }
            }
        }
        for t in tasks.iter().chain(handler_tasks.iter()) {
            for n in &t.notify {
                if !Templar::is_template(n) && !names.contains(n) {
                    self.errors.push(
                        LoadError::at(
                            t.location.clone(),
                            format!("notify: no handler named or listening to `{n}`"),
                        )
                        .with_key("notify"),
                    );
                }
            }
        }
    }
}
