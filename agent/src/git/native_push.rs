//! A push without the `git` CLI: gix-transport's `Service::ReceivePack` over protocol V1 (git has
//! no receive-pack over V2), a pack of full objects built with gix-pack, and the server's
//! `report-status` read back.
//!
//! The compare-and-swap on `expected_old` happens twice: client-side against the advertised ref
//! (a moved remote is [`PushResult::Stale`] without sending anything), and server-side, as
//! receive-pack only applies `<old> <new> <ref>` while the ref still is at `<old>`.

use std::collections::HashSet;
use std::io::{Read, Write};

use gix::odb::pack::data::output;
use gix::protocol::handshake::Ref;
use gix::protocol::transport::client::blocking_io::{connect, ssh, ExtendedBufRead};
use gix::protocol::transport::client::{MessageKind, WriteMode};
use gix::protocol::transport::{Protocol, Service};
use gix::ObjectId;

use super::error::{Cause, PushError, RemoteKind};
use super::push::{PushRequest, PushResult, StatusPush};
use super::transport::{http_options, install_tls_provider, ssh_command};
use super::GitError;

/// Pushes through gix-transport (file://, git://, http(s)://, ssh://) with the same SSH command
/// and HTTP credentials as the fetch.
pub struct NativePush;

impl StatusPush for NativePush {
    fn push(&self, req: &PushRequest<'_>) -> Result<PushResult, GitError> {
        let fail = |source: PushError| GitError::Push {
            url: req.url.to_string(),
            branch: req
                .remote_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(req.remote_ref)
                .to_string(),
            source,
        };
        let local = |step: String| move |source: Cause| fail(PushError::Local { step, source });
        let has_credentials = req.opts.http_credentials.is_some();
        let remote = |step: &'static str| {
            move |e: gix::Error| {
                fail(PushError::Remote {
                    step,
                    kind: RemoteKind::of(&e, has_credentials),
                    source: Box::new(e),
                })
            }
        };
        install_tls_provider();
        let mut repo = gix::open_opts(req.git_dir, gix::open::Options::isolated())
            .map_err(|e| local(format!("opening {}", req.git_dir.display()))(e.into()))?;
        // Most advertised tips (other hosts' branches) are not here: without this, each miss
        // re-reads the pack directory (20,000 branches took a second per push).
        repo.objects.refresh_never();
        let url = gix::url::parse(gix::bstr::BStr::new(req.url))
            .map_err(|e| local("parsing the URL".into())(e.into()))?;
        let is_http = matches!(url.scheme, gix::url::Scheme::Http | gix::url::Scheme::Https);
        let options = connect::Options {
            version: Protocol::V1,
            ssh: ssh::connect::Options {
                command: Some(
                    ssh_command(req.opts)
                        .map_err(|e| local("quoting the ssh command".into())(e.into()))?
                        .into(),
                ),
                kind: Some(ssh::ProgramKind::Ssh),
                ..Default::default()
            },
            trace: false,
        };
        let mut transport = connect::connect(url, options).map_err(|e| {
            fail(PushError::Remote {
                step: "connecting",
                kind: RemoteKind::of(&e, has_credentials),
                source: Box::new(e),
            })
        })?;
        if let Some(http) =
            http_options(&repo, req.url, req.opts).map_err(|e| fail(PushError::Http(e)))?
        {
            transport
                .configure(&http)
                .map_err(|e| local("configuring the HTTP transport".into())(e.into()))?;
        }
        let credentials = req.opts.http_credentials.clone();
        let authenticate = super::transport::configured_account(credentials);
        let handshake = gix::protocol::handshake(
            &mut transport,
            Service::ReceivePack,
            authenticate,
            Vec::new(),
            &mut gix::progress::Discard,
        )
        .map_err(remote("handshake"))?;
        let refs = handshake.refs.unwrap_or_default();
        let remote_tip = refs.iter().find_map(|r| match r {
            Ref::Direct {
                full_ref_name,
                object,
            } if full_ref_name == req.remote_ref => Some(*object),
            _ => None,
        });
        // Ends the session without commands (a lone flush) where the server waits for them.
        let hang_up = |transport: &mut Box<
            dyn gix::protocol::transport::client::blocking_io::Transport + Send,
        >| {
            if !is_http {
                if let Ok(w) = transport.request(WriteMode::Binary, MessageKind::Flush, false) {
                    let _ = w.into_read();
                }
            }
        };
        if remote_tip == Some(req.new) {
            hang_up(&mut transport);
            return Ok(PushResult::UpToDate);
        }
        if remote_tip != req.expected_old {
            hang_up(&mut transport);
            return Ok(PushResult::Stale {
                reason: format!(
                    "the remote ref is at {} but {} was expected",
                    remote_tip.map_or("nothing".into(), |o| o.to_string()),
                    req.expected_old.map_or("nothing".into(), |o| o.to_string())
                ),
            });
        }
        // What the remote has: the expected tip plus every advertised tip we have locally.
        let mut haves: HashSet<ObjectId> = refs
            .iter()
            .filter_map(|r| match r {
                Ref::Direct { object, .. } | Ref::Peeled { object, .. } => Some(*object),
                Ref::Symbolic { object, .. } => Some(*object),
                Ref::Unborn { .. } => None,
            })
            .collect();
        haves.retain(|id| repo.has_object(id));
        haves.extend(req.expected_old);
        let ids = objects_to_send(&repo, req.new, req.expected_old, &haves)
            .map_err(local("selecting objects".into()))?;
        let pack = build_pack(&repo, &ids).map_err(local("building the pack".into()))?;

        let side_band = handshake.capabilities.contains("side-band-64k");
        let mut caps = String::from("report-status");
        if side_band {
            caps.push_str(" side-band-64k");
        }
        caps.push_str(" agent=gitops-agent/");
        caps.push_str(env!("CARGO_PKG_VERSION"));
        let old = req
            .expected_old
            .unwrap_or_else(|| ObjectId::null(repo.object_hash()));
        let command = format!("{old} {} {}\0{caps}", req.new, req.remote_ref);
        let io = |step: &'static str| {
            move |e: std::io::Error| PushError::Remote {
                step,
                kind: RemoteKind::Transport,
                source: Box::new(e),
            }
        };
        let (response, remote_messages) = (|| -> Result<(Vec<u8>, Vec<String>), PushError> {
            let mut w = transport
                .request(WriteMode::Binary, MessageKind::Flush, false)
                .map_err(|e| PushError::Remote {
                    step: "starting the request",
                    kind: RemoteKind::of(&e, has_credentials),
                    source: Box::new(e),
                })?;
            w.write_all(command.as_bytes())
                .map_err(io("sending the command"))?;
            w.write_message(MessageKind::Flush)
                .map_err(io("sending the command"))?;
            let (mut raw, mut reader) = w.into_parts();
            raw.write_all(&pack).map_err(io("sending the pack"))?;
            raw.flush().map_err(io("sending the pack"))?;
            // HTTP: ends the POST body, so the server can answer.
            drop(raw);
            let messages = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut out = Vec::new();
            if side_band {
                // Band 2 and 3 (progress, hook output) go to the handler; band 1 is read.
                let sink = messages.clone();
                reader.set_progress_handler(Some(Box::new(move |_is_err, msg: &[u8]| {
                    sink.borrow_mut()
                        .push(String::from_utf8_lossy(msg).trim_end().to_string());
                    std::ops::ControlFlow::Continue(())
                })));
            }
            reader
                .read_to_end(&mut out)
                .map_err(io("reading the report"))?;
            drop(reader);
            let messages = messages.take();
            Ok((out, messages))
        })()
        .map_err(fail)?;
        let lines = if side_band {
            unframe(&response).map_err(|e| {
                fail(PushError::Remote {
                    step: "reading the report",
                    kind: RemoteKind::Transport,
                    source: e.into(),
                })
            })?
        } else {
            // Without side-band the reader concatenated the pkt-lines, each ending in '\n'.
            String::from_utf8_lossy(&response)
                .lines()
                .map(str::to_string)
                .collect()
        };
        interpret(&lines, req.remote_ref).map_err(|reason| {
            fail(PushError::Refused {
                reason: reason.0,
                said: remote_messages,
            })
        })
    }
}

/// Splits a pkt-line stream (the content of side-band 1) into its lines, up to a flush.
fn unframe(mut data: &[u8]) -> Result<Vec<String>, BadPktLine> {
    let mut lines = Vec::new();
    while data.len() >= 4 {
        let len = std::str::from_utf8(&data[..4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| BadPktLine(format!("{:?}", String::from_utf8_lossy(&data[..4]))))?;
        if len == 0 {
            break;
        }
        if len < 4 || len > data.len() {
            return Err(BadPktLine(len.to_string()));
        }
        let line = String::from_utf8_lossy(&data[4..len]);
        lines.push(line.trim_end_matches('\n').to_string());
        data = &data[len..];
    }
    Ok(lines)
}

/// A pkt-line whose length header is not one.
#[derive(Debug, thiserror::Error)]
#[error("bad pkt-line length {0}")]
struct BadPktLine(String);

/// What the server's report says against the push.
#[derive(Debug, PartialEq, Eq)]
struct Refusal(String);

/// Checks `unpack ok` and the line for `remote_ref` (`ok <ref>` or `ng <ref> <reason>`).
fn interpret(lines: &[String], remote_ref: &str) -> Result<PushResult, Refusal> {
    let mut unpack = None;
    for line in lines {
        if let Some(status) = line.strip_prefix("unpack ") {
            unpack = Some(status.to_string());
        } else if let Some(rest) = line.strip_prefix("ok ") {
            if rest == remote_ref {
                return match unpack.as_deref() {
                    Some("ok") => Ok(PushResult::Pushed),
                    other => Err(Refusal(format!(
                        "unpack failed: {}",
                        other.unwrap_or("no status")
                    ))),
                };
            }
        } else if let Some(rest) = line.strip_prefix("ng ") {
            if let Some(reason) = rest.strip_prefix(remote_ref).map(str::trim) {
                if [
                    "failed to update ref",
                    "fetch first",
                    "non-fast-forward",
                    "stale info",
                ]
                .iter()
                .any(|r| reason.contains(r))
                {
                    return Ok(PushResult::Stale {
                        reason: reason.to_string(),
                    });
                }
                return Err(Refusal(format!("refused: {reason}")));
            }
        }
    }
    match unpack.as_deref() {
        Some("ok") | None => Err(Refusal(format!(
            "no status for {remote_ref} in the server's report: {lines:?}"
        ))),
        Some(other) => Err(Refusal(format!("unpack failed: {other}"))),
    }
}

/// The commits from `new` back to what the remote has (`haves`), plus the trees and blobs of
/// those commits that are not in the tree of `old`.
fn objects_to_send(
    repo: &gix::Repository,
    new: ObjectId,
    old: Option<ObjectId>,
    haves: &HashSet<ObjectId>,
) -> Result<Vec<ObjectId>, Cause> {
    let mut known = HashSet::new();
    if let Some(old) = old {
        if let Ok(commit) = repo.find_commit(old) {
            let tree = commit.tree_id()?.detach();
            tree_closure(repo, tree, &HashSet::new(), &mut known, &mut Vec::new())?;
        }
    }
    let mut commits = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![new];
    while let Some(id) = stack.pop() {
        if haves.contains(&id) || !seen.insert(id) {
            continue;
        }
        let Ok(commit) = repo.find_commit(id) else {
            // Beyond a shallow boundary: the remote must have it.
            continue;
        };
        commits.push((id, commit.tree_id()?.detach()));
        for parent in commit.parent_ids() {
            stack.push(parent.detach());
        }
    }
    let mut out: Vec<ObjectId> = commits.iter().map(|(id, _)| *id).collect();
    let mut added = HashSet::new();
    for (_, tree) in commits {
        tree_closure(repo, tree, &known, &mut added, &mut out)?;
    }
    Ok(out)
}

/// Adds `tree` and everything below it to `seen`/`out`, skipping whatever is in `skip`.
fn tree_closure(
    repo: &gix::Repository,
    tree: ObjectId,
    skip: &HashSet<ObjectId>,
    seen: &mut HashSet<ObjectId>,
    out: &mut Vec<ObjectId>,
) -> Result<(), Cause> {
    if skip.contains(&tree) || !seen.insert(tree) {
        return Ok(());
    }
    out.push(tree);
    let tree_obj = repo.find_tree(tree)?;
    let decoded = tree_obj.decode()?;
    let entries: Vec<_> = decoded
        .entries
        .iter()
        .map(|e| (e.mode, e.oid.to_owned()))
        .collect();
    for (mode, oid) in entries {
        if mode.is_tree() {
            tree_closure(repo, oid, skip, seen, out)?;
        } else if mode.is_commit() {
            // A submodule: not part of this repository.
        } else if !skip.contains(&oid) && seen.insert(oid) {
            out.push(oid);
        }
    }
    Ok(())
}

/// A version-2 pack of `ids` as full (undeltified) objects.
fn build_pack(repo: &gix::Repository, ids: &[ObjectId]) -> Result<Vec<u8>, Cause> {
    let mut entries = Vec::with_capacity(ids.len());
    for id in ids {
        let object = repo.find_object(*id)?;
        let data = gix::objs::Data::new(&object.data, object.kind, repo.object_hash());
        let entry = output::Entry::from_data(
            &output::Count::from_data(*id, None),
            &data,
            gix::zlib::Compression::DEFAULT,
        )?;
        entries.push(entry);
    }
    let mut pack = Vec::new();
    let n = u32::try_from(entries.len())?;
    let writer = output::bytes::FromEntriesIter::new(
        std::iter::once(Ok(entries)),
        &mut pack,
        n,
        gix::odb::pack::data::Version::V2,
        repo.object_hash(),
    );
    for written in writer {
        written?;
    }
    Ok(pack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_status_is_read_with_and_without_side_band() {
        let r = "refs/heads/status/web-01";
        let framed = b"000eunpack ok\n0020ok refs/heads/status/web-01\n0000";
        let lines = unframe(framed).unwrap();
        assert_eq!(interpret(&lines, r), Ok(PushResult::Pushed));
        let stale = vec![
            "unpack ok".to_string(),
            format!("ng {r} failed to update ref"),
        ];
        assert!(matches!(interpret(&stale, r), Ok(PushResult::Stale { .. })));
        let hook = vec![
            "unpack ok".to_string(),
            format!("ng {r} pre-receive hook declined"),
        ];
        assert!(interpret(&hook, r).unwrap_err().0.contains("hook declined"));
        let unpack = vec!["unpack index-pack failed".to_string(), format!("ok {r}")];
        assert!(interpret(&unpack, r)
            .unwrap_err()
            .0
            .contains("unpack failed"));
    }
}
