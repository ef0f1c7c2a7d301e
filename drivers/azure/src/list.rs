//! Directory listings: List Blobs with the `/` delimiter, which
//! `azure_storage_blob` 1.1 does not expose, sent through the same pipeline
//! (authorization, transport) as the SDK's own calls.
//!
//! # Cursors and order
//!
//! A page's `next` cursor is the last name it returned; the following page
//! starts there with the service's `startFrom` parameter (service version
//! 2026-02-06, inclusive, so the cursor entry itself is skipped). Azure orders
//! a directory `d` by its prefix `d/`, so a file `d.txt` or `d-1` (bytes below
//! `/`) comes before it, while the [`Storage`](berth_storage::Storage)
//! contract sorts by name (`d` before `d.txt`). Within a page the entries are
//! sorted by name; across pages, a directory that could still sort before a
//! name already received (a prefix of it, followed by a byte below `/`) is
//! looked up before that name is handed out, so pages never go backwards.

use crate::sas::encode_query_value;
use azure_core::http::{Context, Method, Pipeline, Request, Url};
use berth_storage::{Entry, EntryKind};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::SystemTime;

/// One child of a listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// The name below the listed directory (no `/`).
    pub name: String,
    /// A blob or a common prefix.
    pub kind: EntryKind,
    /// Blob size.
    pub size: u64,
    /// Blob last-modified time.
    pub modified: Option<SystemTime>,
}

impl Item {
    /// The entry of this item inside `dir` (a storage path).
    pub fn entry(&self, dir: &str) -> Entry {
        Entry {
            path: berth_storage::join_path(dir, &self.name),
            kind: self.kind,
            size: self.size,
            modified: self.modified,
        }
    }
}

/// One response of List Blobs.
#[derive(Debug, Default)]
pub(crate) struct RawPage {
    /// Children, in Azure's order.
    pub items: Vec<Item>,
    /// The directory's own marker blob (`dir/`) was listed.
    pub saw_marker: bool,
    /// Azure's continuation marker, when more results follow.
    pub next_marker: Option<String>,
    /// The greatest key (relative to the prefix) of the results, of any
    /// kind: everything up to it was listed. (Azurite sends the prefixes
    /// after the blobs, so this is not always the last one.)
    pub last_key: Option<String>,
}

#[derive(Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: BlobsXml,
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Deserialize, Default)]
struct BlobsXml {
    #[serde(rename = "$value", default)]
    items: Vec<ItemXml>,
}

#[derive(Deserialize)]
enum ItemXml {
    Blob(BlobXml),
    BlobPrefix(PrefixXml),
}

#[derive(Deserialize)]
struct BlobXml {
    #[serde(rename = "Name")]
    name: NameXml,
    #[serde(rename = "Properties", default)]
    properties: PropertiesXml,
}

#[derive(Deserialize)]
struct PrefixXml {
    #[serde(rename = "Name")]
    name: NameXml,
}

#[derive(Deserialize)]
struct NameXml {
    #[serde(rename = "@Encoded", default)]
    encoded: Option<String>,
    #[serde(rename = "$text", default)]
    text: String,
}

#[derive(Deserialize, Default)]
struct PropertiesXml {
    #[serde(rename = "Last-Modified", default)]
    last_modified: Option<String>,
    #[serde(rename = "Content-Length", default)]
    content_length: Option<u64>,
}

/// Decodes `%XX` escapes (names the service sent with `Encoded="true"`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl NameXml {
    fn value(self) -> String {
        if self.encoded.as_deref() == Some("true") {
            percent_decode(&self.text)
        } else {
            self.text
        }
    }
}

/// Parses a List Blobs response below `prefix`.
pub(crate) fn parse(body: &[u8], prefix: &str) -> azure_core::Result<RawPage> {
    let results: EnumerationResults = azure_core::xml::from_xml(body)?;
    let mut page = RawPage {
        next_marker: results.next_marker.filter(|m| !m.is_empty()),
        ..RawPage::default()
    };
    for item in results.blobs.items {
        let (full, kind, properties) = match item {
            ItemXml::Blob(b) => (b.name.value(), EntryKind::File, b.properties),
            ItemXml::BlobPrefix(p) => (p.name.value(), EntryKind::Dir, PropertiesXml::default()),
        };
        let Some(key) = full.strip_prefix(prefix) else {
            continue;
        };
        if page.last_key.as_deref().is_none_or(|last| key > last) {
            page.last_key = Some(key.to_string());
        }
        let name = match kind {
            EntryKind::Dir => key.trim_end_matches('/'),
            EntryKind::File => key,
        };
        if name.is_empty() {
            // The directory's own marker blob (`dir/`).
            page.saw_marker = true;
            continue;
        }
        if name.contains('/') {
            // A marker of a subdirectory is listed as its prefix already.
            continue;
        }
        page.items.push(Item {
            name: name.to_string(),
            kind,
            size: properties.content_length.unwrap_or(0),
            modified: properties
                .last_modified
                .and_then(|t| azure_core::time::parse_rfc7231(&t).ok())
                .map(SystemTime::from),
        });
    }
    Ok(page)
}

/// Sends List Blobs requests with the delimiter.
pub(crate) struct Lister {
    /// The pipeline of the SDK clients (authorization, transport).
    pub pipeline: Pipeline,
    /// The blob service URL.
    pub service_url: Url,
    /// The `x-ms-version` to send.
    pub version: String,
}

/// Where a listing request starts.
pub(crate) enum From<'a> {
    /// At the first name at or after this one (relative to the prefix).
    Name(&'a str),
    /// At Azure's continuation marker.
    Marker(&'a str),
}

impl Lister {
    /// One List Blobs request for the children of `prefix` (`""` or ending
    /// in `/`) in `container`.
    pub async fn fetch(
        &self,
        container: &str,
        prefix: &str,
        from: Option<From<'_>>,
        max: i32,
    ) -> azure_core::Result<RawPage> {
        let mut url = self.service_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(container);
        }
        let mut query = format!(
            "restype=container&comp=list&delimiter=%2F&maxresults={max}&prefix={}",
            encode_query_value(prefix)
        );
        match from {
            Some(From::Name(name)) => {
                query.push_str("&startFrom=");
                query.push_str(&encode_query_value(&format!("{prefix}{name}")));
            }
            Some(From::Marker(marker)) => {
                query.push_str("&marker=");
                query.push_str(&encode_query_value(marker));
            }
            None => {}
        }
        url.set_query(Some(&query));
        let mut request = Request::new(url, Method::Get);
        request.insert_header("accept", "application/xml");
        request.insert_header("x-ms-version", self.version.clone());
        let response = self
            .pipeline
            .send(
                &Context::new(),
                &mut request,
                Some(azure_core::http::PipelineSendOptions {
                    skip_checks: false,
                    check_success: azure_core::error::CheckSuccessOptions {
                        success_codes: &[200],
                    },
                }),
            )
            .await?;
        parse(response.body(), prefix)
    }
}

/// Directories not yet seen that could sort before a seen name: for a seen
/// `name` with a byte below `/` at position `i`, the directory `name[..i]`
/// lists after every seen key (its key `name[..i]/` is above `last_key`) yet
/// sorts before `name`. Only those after `cursor` and not seen matter.
pub(crate) fn hidden_dirs(seen: &[Item], cursor: Option<&str>, last_key: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in seen {
        for (i, b) in item.name.bytes().enumerate() {
            if b < b'/' && i > 0 {
                let dir = &item.name[..i];
                if format!("{dir}/").as_str() > last_key && cursor.is_none_or(|c| dir > c) {
                    out.insert(dir.to_string());
                }
            }
        }
    }
    for item in seen {
        if item.kind == EntryKind::Dir {
            out.remove(&item.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="box">
  <Prefix>mix/</Prefix><MaxResults>5</MaxResults><Delimiter>/</Delimiter>
  <Blobs>
    <Blob><Name>mix/</Name><Properties><Content-Length>0</Content-Length></Properties></Blob>
    <Blob><Name>mix/a.txt</Name><Properties><Last-Modified>Sun, 22 Nov 2026 10:00:00 GMT</Last-Modified><Content-Length>1</Content-Length><BlobType>BlockBlob</BlobType></Properties><OrMetadata /></Blob>
    <BlobPrefix><Name>mix/c/</Name></BlobPrefix>
    <Blob><Name Encoded="true">mix/%EF%BF%BF%01x</Name><Properties><Content-Length>2</Content-Length></Properties></Blob>
  </Blobs>
  <NextMarker>opaque</NextMarker>
</EnumerationResults>"#;

    #[test]
    fn parses_blobs_prefixes_and_markers() {
        let page = parse(BODY.as_bytes(), "mix/").unwrap();
        assert!(page.saw_marker);
        assert_eq!(page.next_marker.as_deref(), Some("opaque"));
        assert_eq!(page.last_key.as_deref(), Some("\u{ffff}\u{1}x"));
        let prefixes_last = parse(
            br#"<EnumerationResults><Blobs><Blob><Name>d0</Name></Blob><BlobPrefix><Name>d/</Name></BlobPrefix></Blobs></EnumerationResults>"#,
            "",
        )
        .unwrap();
        assert_eq!(prefixes_last.last_key.as_deref(), Some("d0"));
        let names: Vec<(&str, EntryKind, u64)> = page
            .items
            .iter()
            .map(|i| (i.name.as_str(), i.kind, i.size))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a.txt", EntryKind::File, 1),
                ("c", EntryKind::Dir, 0),
                ("\u{ffff}\u{1}x", EntryKind::File, 2)
            ]
        );
        assert!(page.items[0].modified.is_some());
        let empty = parse(
            br#"<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"#,
            "",
        )
        .unwrap();
        assert!(empty.items.is_empty() && empty.next_marker.is_none());
    }

    fn file(name: &str) -> Item {
        Item {
            name: name.into(),
            kind: EntryKind::File,
            size: 0,
            modified: None,
        }
    }

    #[test]
    fn finds_directories_that_sort_before_seen_names() {
        let seen = [file("a.txt"), file("b-1.txt"), file("c")];
        // Everything up to "c" was listed: "a/" and "b/" would have come
        // before it, only directories listed after "c" can hide.
        assert!(hidden_dirs(&seen, None, "c").is_empty());
        let seen = [file("x"), file("y.txt"), file("y.txt.bak")];
        let hidden = hidden_dirs(&seen, None, "y.txt.bak");
        assert_eq!(hidden.into_iter().collect::<Vec<_>>(), vec!["y", "y.txt"]);
        // Names at or before the cursor were handed out already.
        assert!(hidden_dirs(&seen, Some("y.txt"), "y.txt.bak").is_empty());
        // A directory already listed is not hidden.
        let mut seen = seen.to_vec();
        seen.push(Item {
            kind: EntryKind::Dir,
            ..file("y")
        });
        let hidden = hidden_dirs(&seen, None, "y.txt.bak");
        assert_eq!(hidden.into_iter().collect::<Vec<_>>(), vec!["y.txt"]);
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
        assert_eq!(percent_decode("%E6%97%A5"), "日");
    }
}
